"""Waits with a limit that holds even when what is waited on will not stop.

`asyncio.wait_for` is not such a limit: at its timeout it cancels, then waits for the cancellation
to finish. SQLAlchemy's asyncio sessions and connections finish their close even when cancelled
(`_run_to_completion`), so a `wait_for` around anything that holds one waits as long as a database
that does not answer takes to close it — a stopping service, or a readiness probe, held for minutes.
Here the work is cancelled and left to end on its own; the caller goes on at the limit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

import structlog

T = TypeVar("T")

log = structlog.get_logger("cradle.bounded")

# Tasks given up on, kept referenced until they end (the loop holds only weak references to tasks).
_left_behind: set[asyncio.Future[Any]] = set()


def _leave_behind(task: asyncio.Future[Any]) -> None:
    task.cancel()
    _left_behind.add(task)

    def ended(done: asyncio.Future[Any]) -> None:
        _left_behind.discard(done)
        if not done.cancelled():
            done.exception()  # retrieved: a late failure of abandoned work is not worth a warning

    task.add_done_callback(ended)


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that a library swallowed. nats-py catches a CancelledError inside its
    drain and flush and goes on to raise ConnectionClosedError: a loop that retries on Exception then
    goes round for ever, and neither a stopping service nor an event loop's close can end it (a test's
    loop waited on one for its whole 300 s limit). Called first in such a loop's `except Exception`."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """`awaitable`'s result, or TimeoutError after `seconds` — then, at once, with the work cancelled
    and not waited for. A caller cancelled meanwhile cancels the work the same way."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        _leave_behind(task)
        raise
    if not done:
        _leave_behind(task)
        raise TimeoutError(f"no answer within {seconds:g} s")
    return task.result()


async def settle(step: str, awaitable: Awaitable[Any], *, seconds: float) -> bool:
    """Shutting down: let `awaitable` finish within `seconds`; a step that overruns or fails is logged
    and left behind. True when it finished cleanly."""
    try:
        await within(seconds, awaitable)
    except TimeoutError:
        log.error("shutdown_step_timed_out", step=step, seconds=seconds)
        return False
    except Exception as exc:
        log.warning("shutdown_step_failed", step=step, error=f"{type(exc).__name__}: {exc}"[:200])
        return False
    return True


async def stop_task(step: str, task: asyncio.Task[Any] | None, *, seconds: float) -> bool:
    """Cancel a running task and give it `seconds` to end; past them it is left behind. True when it
    ended in time."""
    if task is None or task.done():
        return True
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        _leave_behind(task)
        log.error("shutdown_step_timed_out", step=step, seconds=seconds)
        return False
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
    return True
