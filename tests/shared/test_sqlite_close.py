"""shared/db.py makes aiosqlite's stop idempotent: SQLAlchemy stops a connection by force while the
graceful close it began still runs (a connection invalidated under a cancelled task), and that
close then waited forever for a job the connection's thread, already ended, would never run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite

import shared.db  # noqa: F401  (applies the fix, as every engine's module does)


async def test_a_close_racing_a_forced_stop_ends(tmp_path: Path) -> None:
    connection = await aiosqlite.connect(tmp_path / "race.db")
    closing = asyncio.ensure_future(connection.close())
    await asyncio.sleep(0)  # the close's job is queued for the connection's thread
    connection.stop()  # SQLAlchemy's terminate, by force, meanwhile
    done, _ = await asyncio.wait({closing}, timeout=5)
    assert done, "the graceful close never ended"
    closing.result()
    connection._thread.join(5)
    assert not connection._thread.is_alive()


async def test_a_plain_close_still_closes_and_ends_the_thread(tmp_path: Path) -> None:
    connection = await aiosqlite.connect(tmp_path / "plain.db")
    await connection.execute("CREATE TABLE t (x)")
    await connection.close()
    connection._thread.join(5)
    assert not connection._thread.is_alive()
    second = await aiosqlite.connect(tmp_path / "plain.db")
    try:
        assert await (await second.execute("SELECT count(*) FROM t")).fetchone() == (0,)
    finally:
        await second.close()
