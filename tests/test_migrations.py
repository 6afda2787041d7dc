"""Every service's migrations go up, down and up again on both databases."""

from __future__ import annotations

import asyncio
import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from cradle.migrations import downgrade, upgrade
from cradle.services import PROCESSES
from shared.db import make_engine
from tests.support import DatabaseFactory


async def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", sorted(PROCESSES))
async def test_migrations_round_trip(service: str, databases: DatabaseFactory) -> None:
    url = await databases.fresh(service)  # cloned from a database migrated to head
    at_head = await table_names(url)
    assert f"alembic_version_{service}" in at_head
    if service != "gateway":
        assert {"outbox", "inbox"} <= at_head

    await asyncio.to_thread(downgrade, service, url, "base")
    assert await table_names(url) == {f"alembic_version_{service}"}
    await asyncio.to_thread(upgrade, service, url)
    assert await table_names(url) == at_head


@pytest.mark.parametrize("service", sorted(PROCESSES))
async def test_the_models_match_what_the_migrations_built(service: str, databases: DatabaseFactory) -> None:
    url = await databases.fresh(service)
    metadata = importlib.import_module(f"{PROCESSES[service].package}.models").metadata
    opts = {"compare_type": True, "version_table": f"alembic_version_{service}"}
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts=opts), metadata)
            )
    finally:
        await engine.dispose()
    assert differences == []
