"""Work that runs beside a process's requests (a service's scheduled jobs): started with the block,
cancelled when it ends and given STOP_SECONDS to finish, so no task outlives the lifespan that made it
but one stuck closing a database connection (shared/bounded.py), and that one never holds the stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from shared.bounded import stop_task

STOP_SECONDS = 10.0


@asynccontextmanager
async def running_beside(loop: Coroutine[Any, Any, None] | None, *, name: str) -> AsyncIterator[None]:
    """`loop` (one that runs until cancelled, or None for nothing) runs while the block does."""
    task = asyncio.create_task(loop, name=name) if loop is not None else None
    try:
        yield
    finally:
        await stop_task(name, task, seconds=STOP_SECONDS)
