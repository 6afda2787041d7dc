"""A test about to reach pytest-timeout's limit gets its event loop's tasks written out first.

pytest-timeout's own dump shows threads, and a hung asyncio test's main thread only ever shows
the loop's `select`: what waits, and on what, is in the tasks' await chains. Shortly before the
limit, a timer thread writes every task of the running loop with its whole chain into the test's
report (shown with the error) and to stderr."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import traceback
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

# Written this long before pytest-timeout fails the test, so the dump is there when it does.
AHEAD_SECONDS = 20.0


def _frames(awaitable: Any) -> Iterator[FrameType]:
    """The frames of an await chain, outermost first (a suspended coroutine's own stack is one frame)."""
    seen = 0
    while awaitable is not None and seen < 64:
        seen += 1
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is not None:
            yield frame
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)


def describe_tasks() -> str:
    loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]
    parts: list[str] = []
    for loop in loops:
        for _ in range(5):  # the set may change under us: the loop thread keeps running
            try:
                tasks = list(asyncio.all_tasks(loop))
                break
            except RuntimeError:
                continue
        else:
            tasks = []
        parts.append(f"{len(tasks)} tasks on {loop!r}")
        for task in tasks:
            parts.append(f"--- {task.get_name()}: {task!r}"[:400])
            stack = [(f, f.f_lineno) for f in _frames(task.get_coro())]
            parts.extend(
                line.rstrip() for line in traceback.format_list(traceback.StackSummary.extract(stack))
            )
    return "\n".join(parts) or "no running event loop"


def _limit(item: pytest.Item) -> float | None:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    configured = item.config.getini("timeout")
    return float(configured) if configured else None


def _watched(item: pytest.Item, phase: str) -> Iterator[None]:
    limit = _limit(item)
    if not limit or limit <= AHEAD_SECONDS:
        yield
        return

    def dump() -> None:
        text = describe_tasks()
        item.add_report_section(phase, "asyncio tasks near the timeout", text)
        print(
            f"\n=== {item.nodeid} ({phase}): asyncio tasks near the timeout ===\n{text}",
            file=sys.__stderr__,
            flush=True,
        )

    timer = threading.Timer(limit - AHEAD_SECONDS, dump)  # pytest-timeout limits each phase apart
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    yield from _watched(item, "setup")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield from _watched(item, "call")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield from _watched(item, "teardown")
