"""shared/bounded.py: a limit that holds when the work will not stop — above all a PostgreSQL
connection that stops answering while SQLAlchemy closes it, which `asyncio.wait_for` waits out."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared.bounded import settle, stop_task, within
from shared.db import make_engine
from tests.support import PG_ADMIN_URL, postgres_reachable


async def stubborn(cleanup_seconds: float) -> None:
    """Work whose cleanup finishes even when cancelled, as SQLAlchemy's async close does."""
    try:
        await asyncio.sleep(3600)
    finally:
        cleanup = asyncio.ensure_future(asyncio.sleep(cleanup_seconds))
        while not cleanup.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(cleanup)


async def test_within_gives_the_result_or_gives_up_at_its_limit_without_waiting_for_the_cleanup() -> None:
    assert await within(1, asyncio.sleep(0, result="ok")) == "ok"
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await within(0.2, stubborn(cleanup_seconds=30))
    assert time.monotonic() - started < 5  # the 30 s cleanup goes on, left behind


async def test_a_task_that_will_not_stop_is_left_behind_at_the_limit() -> None:
    task = asyncio.create_task(stubborn(cleanup_seconds=30))
    await asyncio.sleep(0)
    started = time.monotonic()
    assert await stop_task("stubborn", task, seconds=0.2) is False
    assert time.monotonic() - started < 5
    assert not task.done()
    quick = asyncio.create_task(asyncio.sleep(3600))
    assert await stop_task("quick", quick, seconds=1) is True and quick.cancelled()


async def test_settle_reports_a_failing_step_and_goes_on() -> None:
    async def fails() -> None:
        raise ConnectionResetError("peer went away")

    assert await settle("fails", fails(), seconds=1) is False
    assert await settle("fine", asyncio.sleep(0), seconds=1) is True


class FreezingProxy:
    """A TCP proxy to PostgreSQL that can stop forwarding, both ways, while keeping the sockets
    open: a database host that stops answering without closing anything."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.frozen = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> FreezingProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    if self.frozen.is_set():
                        await asyncio.Event().wait()  # held, never forwarded
                    sink.write(data)
                    await sink.drain()

        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))


@pytest.fixture
async def frozen_postgres() -> AsyncIterator[tuple[FreezingProxy, str]]:
    if not await postgres_reachable():
        pytest.skip("PostgreSQL is not reachable")
    admin = make_url(PG_ADMIN_URL)
    async with FreezingProxy(admin.host or "127.0.0.1", admin.port or 5432) as proxy:
        url = admin.set(drivername="postgresql+asyncpg", host="127.0.0.1", port=proxy.port)
        yield proxy, url.render_as_string(False)


async def test_a_readiness_style_check_answers_within_its_limit_when_postgresql_stops_answering(
    frozen_postgres: tuple[FreezingProxy, str],
) -> None:
    proxy, url = frozen_postgres
    engine = make_engine(url)

    async def database_ready() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    await within(10, database_ready())  # answers while the proxy forwards
    proxy.frozen.set()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await within(1, database_ready())
    # At the limit: `asyncio.wait_for` took 3 s here (asyncpg's cancellation over a dead link).
    assert time.monotonic() - started < 2.5
    await settle("database pool", engine.dispose(), seconds=1)  # a stop that does not hang either
    assert time.monotonic() - started < 10


class SwallowingBus:
    """A bus whose wait swallows a cancellation and raises what nats-py raises in its place."""

    def __init__(self) -> None:
        self.waits = 0
        self.swallow = True
        self.namespace = SimpleNamespace(stream=lambda service: f"TEST_{service.upper()}")

    async def wait_ready(self) -> None:
        self.waits += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if self.swallow:
                raise ConnectionError("nats: connection closed") from None
            raise


async def test_a_consumer_whose_library_swallows_its_cancellation_still_stops() -> None:
    """A cancellation turned into another error by the library underneath (nats-py's drain does
    this) still ends the consumer's retry loop: before, it went round for ever, and the event loop's
    close waited on it until the test's time limit."""
    from shared.events.consumer import ConsumerPolicy, EventConsumer

    bus = SwallowingBus()
    consumer = EventConsumer(
        service="workforce",
        source_service="registry",
        handlers={},
        bus=bus,  # type: ignore[arg-type]
        maker=None,  # type: ignore[arg-type]
        inbox=None,  # type: ignore[arg-type]
        metrics=None,  # type: ignore[arg-type]
        policy=ConsumerPolicy(),
    )
    task = asyncio.create_task(consumer._run())
    await asyncio.sleep(0.05)
    assert bus.waits == 1
    task.cancel()
    try:
        done, _ = await asyncio.wait([task], timeout=3)
        assert done and task.cancelled() and bus.waits == 1
    finally:  # a regression fails here, not in a loop that cannot close until the time limit
        if not task.done():
            bus.swallow = False
            task.cancel()
            await asyncio.wait([task], timeout=5)
