"""Alembic, driven from code: each process keeps its migrations in `<package>/migrations/` and its
own version table (`alembic_version_<name>`); `cradle migrate` and the tests call `upgrade` through
cradle/migrations.py, which knows each process's package."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import async_url, is_sqlite

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic (and Mako under it) is imported where a migration runs, not by every command that only
# names one: a `cradle` command that fails its checks, or never migrates, starts ~70 ms sooner.


def alembic_config(package: str, service: str, database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", f"{package}:migrations")
    config.set_main_option("file_template", "%%(year)d-%%(month).2d-%%(day).2d_%%(slug)s")
    config.attributes["database_url"] = database_url
    config.attributes["service"] = service
    return config


def upgrade(package: str, service: str, database_url: str, revision: str = "head") -> None:
    """Blocking: call from a thread when an event loop is running."""
    from alembic import command

    command.upgrade(alembic_config(package, service, database_url), revision)


def downgrade(package: str, service: str, database_url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(package, service, database_url), revision)


def run_env(metadata: MetaData) -> None:
    """The body of every service's `migrations/env.py`."""
    from alembic import context

    config = context.config
    url: str = config.attributes["database_url"]
    version_table = f"alembic_version_{config.attributes['service']}"

    def migrate(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=version_table,
            render_as_batch=is_sqlite(url),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, version_table=version_table, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    async def run_online() -> None:
        engine = create_async_engine(async_url(url), poolclass=pool.NullPool)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(migrate)
        finally:
            await engine.dispose()

    asyncio.run(run_online())
