"""Work that runs beside a process's requests (a service's scheduled jobs): started with the block,
cancelled and awaited when it ends, so no task outlives the lifespan that made it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any


@asynccontextmanager
async def running_beside(loop: Coroutine[Any, Any, None] | None, *, name: str) -> AsyncIterator[None]:
    """`loop` (one that runs until cancelled, or None for nothing) runs while the block does."""
    task = asyncio.create_task(loop, name=name) if loop is not None else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
