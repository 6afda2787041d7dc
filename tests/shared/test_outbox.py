"""The outbox against real databases and the real NATS server."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, ClassVar

import nats
import pytest
import structlog
from opentelemetry import context as otel_context
from pydantic import ConfigDict
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.models import outbox
from shared import tracing
from shared.contracts import EVENT_MODELS
from shared.db import ON_OUTBOX_COMMIT, is_sqlite, make_engine
from shared.events.bus import EventBus
from shared.events.envelope import DomainEvent
from shared.events.outbox import OutboxRelay, OutboxWriter, emit, outbox_session_info
from shared.events.streams import Namespace
from shared.jobs import round_alone
from shared.observability import Metrics
from tests.support import DatabaseFactory, eventually

TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


class Pinged(DomainEvent):
    model_config = ConfigDict(extra="allow")

    event_type: ClassVar[str] = "cradle.registry.test.pinged"
    n: int


@pytest.fixture(autouse=True)
def test_contracts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox refuses a type without a contract: these test events get one for the test."""
    for model in (Pinged, Misrouted):
        monkeypatch.setitem(EVENT_MODELS, model.event_type, model)


@pytest.fixture
async def parts(
    databases: DatabaseFactory, shared_nats_url: str, namespace: str
) -> AsyncIterator[dict[str, Any]]:
    url = await databases.fresh("registry")
    engine = make_engine(url)
    ns = Namespace(namespace)
    info = outbox_session_info(OutboxWriter(outbox, ns, "/cradle/registry"))
    maker = async_sessionmaker(engine, expire_on_commit=False, info=info)
    bus = EventBus(url=shared_nats_url, namespace=ns, replicas=1, client_name="test-outbox")
    bus.start()
    await bus.wait_ready()
    yield {"url": url, "maker": maker, "bus": bus, "ns": ns, "info": info}
    await bus.close()
    await engine.dispose()


def relay_for(
    parts: dict[str, Any], bus: EventBus | None = None, batch_size: int = 50, poll_seconds: float = 5.0
) -> OutboxRelay:
    return OutboxRelay(
        maker=parts["maker"],
        table=outbox,
        bus=bus or parts["bus"],
        metrics=Metrics("registry"),
        lock_rows=not is_sqlite(parts["url"]),
        batch_size=batch_size,
        poll_seconds=poll_seconds,
    )


async def stream_count(parts: dict[str, Any]) -> int:
    js = parts["bus"].js
    return (await js.stream_info(parts["ns"].stream("registry"))).state.messages


async def pending(maker: async_sessionmaker[AsyncSession]) -> int:
    async with maker() as session:
        return (await session.execute(select(func.count()).where(outbox.c.sent_at.is_(None)))).scalar_one()


async def test_a_rolled_back_transaction_emits_nothing(parts: dict[str, Any]) -> None:
    maker = parts["maker"]
    with pytest.raises(RuntimeError):
        async with maker() as session, session.begin():
            await emit(session, Pinged(n=1))
            raise RuntimeError("the change failed")
    async with maker() as session:
        assert (await session.execute(select(func.count()).select_from(outbox))).scalar_one() == 0
    assert await relay_for(parts).relay_once() == 0
    assert await stream_count(parts) == 0


async def test_the_relay_is_woken_by_the_commit_not_the_poll(parts: dict[str, Any]) -> None:
    # A poll far longer than the test may last: the event can only leave because the commit woke it.
    relay = relay_for(parts, poll_seconds=3600)
    parts["info"][ON_OUTBOX_COMMIT] = relay.wake
    relay.start()
    try:
        await asyncio.sleep(0.2)  # the relay is now waiting out its hour-long poll
        async with parts["maker"]() as session, session.begin():
            await emit(session, Pinged(n=1))
        await eventually(lambda: _equals(pending(parts["maker"]), 0), timeout=60)
    finally:
        await relay.stop()
    assert await stream_count(parts) == 1


async def test_two_relays_publish_every_event_exactly_once(parts: dict[str, Any]) -> None:
    maker = parts["maker"]
    for batch in range(4):
        async with maker() as session, session.begin():
            for n in range(50):
                await emit(session, Pinged(n=batch * 50 + n))
    second_bus = EventBus(url=parts["bus"].url, namespace=parts["ns"], replicas=1, client_name="relay-2")
    second_bus.start()
    await second_bus.wait_ready()
    try:
        first, second = relay_for(parts, batch_size=20), relay_for(parts, bus=second_bus, batch_size=20)

        async def drain(relay: OutboxRelay) -> int:
            total = 0
            while n := await relay.relay_once():
                total += n
            return total

        acked = await asyncio.gather(drain(first), drain(second))
    finally:
        await second_bus.close()
    assert await pending(maker) == 0
    assert await stream_count(parts) == 200
    if not is_sqlite(parts["url"]):
        # Row locks (FOR UPDATE SKIP LOCKED): no event was even published twice.
        assert sum(acked) == 200


async def test_published_messages_carry_the_event_id_for_deduplication(parts: dict[str, Any]) -> None:
    maker = parts["maker"]
    async with maker() as session, session.begin():
        envelope = await emit(session, Pinged(n=7))
    assert await relay_for(parts).relay_once() == 1
    nc = await nats.connect(parts["bus"].url)
    try:
        js = nc.jetstream()
        msg = await js.get_last_msg(parts["ns"].stream("registry"), parts["ns"].subject(Pinged.event_type))
        assert msg.headers["Nats-Msg-Id"] == envelope.id
        # Publishing it again (say, a relay that crashed before marking it sent) is dropped by the server.
        again = await js.publish(msg.subject, msg.data, headers={"Nats-Msg-Id": envelope.id})
        assert again.duplicate
    finally:
        await nc.close()


async def _equals(awaitable: Any, expected: Any) -> bool:
    return (await awaitable) == expected


class Misrouted(DomainEvent):
    """An event whose subject no stream covers: JetStream refuses it every time."""

    event_type: ClassVar[str] = "cradle.nowhere.test.lost"
    n: int


async def test_an_event_jetstream_refuses_never_holds_back_the_others(parts: dict[str, Any]) -> None:
    maker = parts["maker"]
    async with maker() as session, session.begin():
        for n in range(10):
            await emit(session, Misrouted(n=n) if n == 4 else Pinged(n=n))
    relay = relay_for(parts)

    assert await relay.relay_once() == 9
    assert await stream_count(parts) == 9
    async with maker() as session:
        stuck = (await session.execute(select(outbox).where(outbox.c.sent_at.is_(None)))).one()
    assert stuck.attempts == 1 and stuck.next_attempt_at is not None and stuck.last_error

    # It waits out its retry delay instead of being re-sent, with the others, on every pass.
    assert await relay.relay_once() == 0
    async with maker() as session, session.begin():
        await emit(session, Pinged(n=99))
    assert await relay.relay_once() == 1
    assert await stream_count(parts) == 10


async def test_an_oversized_event_is_refused_in_the_callers_transaction(parts: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="bytes"):
        async with parts["maker"]() as session, session.begin():
            await emit(session, Pinged(n=1, **{"padding": "x" * 600_000}))


async def test_sent_rows_are_purged_after_the_retention(parts: dict[str, Any]) -> None:
    maker = parts["maker"]
    async with maker() as session, session.begin():
        for n in range(3):
            await emit(session, Pinged(n=n))
    relay = relay_for(parts)
    assert await relay.relay_once() == 3
    async with maker() as session, session.begin():
        await emit(session, Pinged(n=3))  # not yet sent: never purged
    assert await relay.purge_sent(older_than=timedelta(days=1)) == 0
    assert await relay.purge_sent(older_than=timedelta(seconds=0)) == 3
    async with maker() as session:
        assert (await session.execute(select(func.count()).select_from(outbox))).scalar_one() == 1


async def envelopes(maker: async_sessionmaker[AsyncSession]) -> dict[int, dict[str, Any]]:
    """Every event in the outbox, by its `n`."""
    async with maker() as session:
        payloads = (await session.execute(select(outbox.c.payload))).scalars()
        return {envelope["data"]["n"]: envelope for envelope in map(json.loads, payloads)}


def trace_of(envelope: dict[str, Any]) -> str:
    assert TRACEPARENT.fullmatch(envelope["traceparent"]), envelope
    return envelope["traceparent"].split("-")[1]


async def test_every_event_carries_a_trace_and_a_request_id(parts: dict[str, Any]) -> None:
    """In a request's (or a handled event's) span, its trace and request id; with neither (a
    command's seed), a trace and a request id of the event's own, never none."""
    maker = parts["maker"]
    for n in (1, 2):
        async with maker() as session, session.begin():
            await emit(session, Pinged(n=n))
    caller = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    token = otel_context.attach(tracing.context_from(caller))
    bound = structlog.contextvars.bind_contextvars(request_id="req-outbox-1")
    try:
        async with maker() as session, session.begin():
            await emit(session, Pinged(n=3))
    finally:
        structlog.contextvars.reset_contextvars(**bound)
        otel_context.detach(token)

    events = await envelopes(maker)
    assert events[3]["traceparent"] == caller and events[3]["requestid"] == "req-outbox-1"
    alone = [events[1], events[2]]
    assert all(event["requestid"] for event in alone)
    assert trace_of(alone[0]) != trace_of(alone[1]) and alone[0]["requestid"] != alone[1]["requestid"]


async def test_a_job_round_is_one_trace_and_one_request_id(parts: dict[str, Any]) -> None:
    """What a scheduled round emits carries the round's own trace and request id (shared/jobs.py),
    which its log lines carry too; the next round is another."""
    tracing.configure_tracing("tests")  # as every service process does at its start (once a process)
    maker = parts["maker"]
    ids = []
    for first in (1, 3):
        async with round_alone(maker, "test.outbox.round") as mine:
            assert mine
            ids.append(structlog.contextvars.get_contextvars()["request_id"])
            for n in (first, first + 1):
                async with maker() as session, session.begin():
                    await emit(session, Pinged(n=n))
    assert "request_id" not in structlog.contextvars.get_contextvars()  # unbound after the round

    events = await envelopes(maker)
    assert [events[n]["requestid"] for n in (1, 2, 3, 4)] == [ids[0], ids[0], ids[1], ids[1]]
    assert trace_of(events[1]) == trace_of(events[2]) != trace_of(events[3]) == trace_of(events[4])
