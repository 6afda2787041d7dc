"""Scheduled work that must run once however many replicas of a service run it: each round is taken
by one replica, the others skip it (they try again at their next round).

On PostgreSQL the round holds a session-level advisory lock, keyed by the job's name, on a
connection of its own for as long as it runs; `pg_try_advisory_lock` never waits, and the server
drops the lock if the replica dies mid-round. SQLite has one writer and replicas are refused on it
(`cradle up --replicas`), so there the round always runs. The jobs keep their own row-level guards
(SKIP LOCKED, unique keys) as well: this lock is what keeps two replicas from scanning the same
rows at the same moment and both acting on what neither has marked yet."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

# The advisory-lock namespace of scheduled jobs (the first of the two keys), any constant.
JOBS_LOCK_SPACE = 0x4A4F4253


def _engine(maker: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    bind = maker.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        raise TypeError("the sessionmaker is not bound to an engine")
    return bind


@contextlib.asynccontextmanager
async def round_alone(maker: async_sessionmaker[AsyncSession], job: str) -> AsyncIterator[bool]:
    """Yields whether this replica has the round of `job`; holds it until the block ends."""
    engine = _engine(maker)
    if engine.dialect.name != "postgresql":
        yield True
        return
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        key = {"space": JOBS_LOCK_SPACE, "job": job}
        taken = bool(
            await connection.scalar(text("SELECT pg_try_advisory_lock(:space, hashtext(:job))"), key)
        )
        try:
            yield taken
        finally:
            if taken:
                await connection.execute(text("SELECT pg_advisory_unlock(:space, hashtext(:job))"), key)
