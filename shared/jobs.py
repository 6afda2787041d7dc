"""Scheduled work that must run once however many replicas of a service run it: each round is taken
by one replica, the others skip it (they try again at their next round).

On PostgreSQL the round holds a session-level advisory lock, keyed by the job's name, on a
connection of its own for as long as it runs; `pg_try_advisory_lock` never waits, and the server
drops the lock if the replica dies mid-round. SQLite has one writer and replicas are refused on it
(`cradle up --replicas`), so there the round always runs. The jobs keep their own row-level guards
(SKIP LOCKED, unique keys) as well: this lock is what keeps two replicas from scanning the same
rows at the same moment and both acting on what neither has marked yet.

A round taken runs as a trace and a request id of its own (`job <name>`): its log lines, the events
it emits (their `traceparent` and `requestid`) and so the consumers' handling of them carry both."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import structlog
from opentelemetry.context import Context
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared import tracing

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
        with _round(job):
            yield True
        return
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        key = {"space": JOBS_LOCK_SPACE, "job": job}
        taken = bool(
            await connection.scalar(text("SELECT pg_try_advisory_lock(:space, hashtext(:job))"), key)
        )
        if not taken:
            yield False
            return
        try:
            with _round(job):
                yield True
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:space, hashtext(:job))"), key)


@contextlib.contextmanager
def _round(job: str) -> Iterator[None]:
    """A root span made current and a request id bound to the log lines, for the round's length."""
    request_id = uuid.uuid4().hex
    attributes = {"cradle.job": job, "cradle.request_id": request_id}
    with tracing.tracer.start_as_current_span(f"job {job}", context=Context(), attributes=attributes) as span:
        trace_id = tracing.trace_id_of(span)
        bound = structlog.contextvars.bind_contextvars(request_id=request_id, trace_id=trace_id)
        try:
            yield
        finally:
            structlog.contextvars.reset_contextvars(**bound)
