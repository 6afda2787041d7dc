"""SQLite's writers of one process take turns for the database (shared/db.writer_turn); PostgreSQL's
do not wait for each other."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker

from shared.db import make_engine, writer_turn


async def test_writers_of_one_sqlite_database_take_turns_and_of_another_do_not(tmp_path: Path) -> None:
    one = make_engine(f"sqlite:///{tmp_path / 'one.db'}")
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        first, second = async_sessionmaker(one), async_sessionmaker(one)  # two makers, one database
        elsewhere = async_sessionmaker(other)
        order: list[str] = []
        holding = asyncio.Event()
        release = asyncio.Event()

        async def holder() -> None:
            async with writer_turn(first):
                order.append("first in")
                holding.set()
                await release.wait()
                order.append("first out")

        async def waiter() -> None:
            await holding.wait()
            async with writer_turn(second):
                order.append("second in")

        task = asyncio.create_task(holder())
        queued = asyncio.create_task(waiter())
        await holding.wait()
        async with writer_turn(elsewhere):  # another database: no wait behind the holder
            order.append("elsewhere")
        await asyncio.sleep(0.05)
        assert "second in" not in order  # waits for its turn
        release.set()
        await asyncio.wait_for(asyncio.gather(task, queued), 5)
        assert order == ["first in", "elsewhere", "first out", "second in"]
    finally:
        await one.dispose()
        await other.dispose()


async def test_postgresql_writers_do_not_queue() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:5432/test")  # not connected: no I/O here
    try:
        maker = async_sessionmaker(engine)
        async with writer_turn(maker):
            async with asyncio.timeout(1):
                async with writer_turn(maker):  # would deadlock if it queued
                    pass
    finally:
        await engine.dispose()
