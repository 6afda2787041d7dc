"""The delivery service's consumers handle a fetched batch of events in one transaction
(shared/events/consumer.py, `batch_handler`). The runner's guarantees hold for a batch as for one
event: an event seen twice is stored once, one that cannot be stored is retried and dead-lettered
alone while the others of its batch are delivered, and an event committed but never acked comes back
and is stored once."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from nats.aio.msg import Msg
from sqlalchemy import func, select

from services.delivery import handlers
from services.delivery.models import Delivery, EventRecord, FacilityProjection, inbox
from shared.contracts.registry import FacilitySubmitted, FacilityUpdated, Places
from shared.events.envelope import CloudEvent
from shared.events.streams import Namespace
from tests.conftest import Stack, start_stack
from tests.delivery.conftest import DELIVERY_OVERRIDES, READS, Receiver, receiving
from tests.shared.test_consumer import dead_letters
from tests.support import DatabaseFactory, eventually


def facility_event(
    facility_id: str | None = None, *, name: str = "批量托育点", version: int = 1, updated: bool = False
) -> CloudEvent:
    model = FacilityUpdated if updated else FacilitySubmitted
    facts = model(
        facility_id=facility_id or str(uuid.uuid4()),
        name=name,
        kind="community_point",
        inclusive=True,
        has_nursery_class=False,
        district_code="310104",
        town_code="310104003",
        status="submitted",
        capacity=Places(infant=10, toddler=15, preschool=20),
        enrolment=Places(infant=0, toddler=0, preschool=0),
        opening_hours=[],
        version=version,
        occurred_at=datetime.now(UTC),
    )
    return CloudEvent(
        source="/cradle/registry",
        type=model.event_type,
        subject=facts.facility_id,
        data=facts.model_dump(mode="json"),
    )


@contextlib.asynccontextmanager
async def delivery_alone(
    databases: DatabaseFactory, nats_url: str, namespace: str, keys: dict[str, Any], **overrides: Any
) -> AsyncIterator[tuple[Stack, Receiver, list[str]]]:
    """The delivery service behind the gateway, with two bureaus' subscriptions to every registry
    event; yields the stack, the receiver and the subscriptions' URLs."""
    async with (
        start_stack(
            databases=databases,
            nats_url=nats_url,
            namespace=namespace,
            keys=keys,
            services=("delivery",),
            overrides={"delivery": DELIVERY_OVERRIDES | overrides},
        ) as stack,
        receiving() as receiver,
    ):
        urls = []
        for _ in range(2):
            bureau = await stack.headers_for(
                name=f"测试局-{uuid.uuid4().hex[:6]}",
                kind="bureau",
                bureau="EDU",
                scopes=[*READS, "events:read", "events:subscribe"],
            )
            url = receiver.endpoint()
            response = await stack.client.post(
                "/v1/subscriptions", json={"url": url, "event_types": ["cradle.registry.**"]}, headers=bureau
            )
            assert response.status_code == 201, response.text
            urls.append(url)
        await eventually(lambda: stack.apps["delivery"].state.bus.connected)
        yield stack, receiver, urls


async def publish_while_paused(
    stack: Stack, nats_url: str, messages: Sequence[tuple[CloudEvent, str]]
) -> None:
    """The consumers stopped while the events are published, so their next fetch takes them all
    at once (one batch). Each message is (event, its Nats-Msg-Id)."""
    delivery = stack.apps["delivery"]
    for consumer in delivery.state.consumers:
        await consumer.stop()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for event, message_id in messages:
            await js.publish(
                Namespace(stack.namespace).subject(event.type),
                event.model_dump_json(exclude_none=True).encode(),
                headers={"Nats-Msg-Id": message_id},
            )
    finally:
        await nc.close()
    for consumer in delivery.state.consumers:
        consumer.start()


@pytest.fixture
def batch_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many events each call of the delivery service's batch handler was given."""
    sizes: list[int] = []
    record_events = handlers.record_events

    async def counting(*, session: Any, events: Sequence[CloudEvent]) -> None:
        sizes.append(len(events))
        await record_events(session=session, events=events)

    monkeypatch.setattr(handlers, "record_events", counting)
    return sizes


async def stored(stack: Stack, model: Any, *where: Any) -> int:
    async with stack.apps["delivery"].state.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def test_an_event_twice_in_one_batch_is_stored_and_sent_once(
    databases: DatabaseFactory,
    shared_nats_url: str,
    namespace: str,
    keys: dict[str, Any],
    batch_sizes: list[int],
) -> None:
    async with delivery_alone(databases, shared_nats_url, namespace, keys) as (stack, receiver, urls):
        first, second = facility_event(), facility_event()
        # The same event again under another message id (a replay, or a producer's re-publish after
        # the stream's duplicate window): the stream keeps both copies.
        newer = facility_event(first.subject, name="改名托育点", version=2, updated=True)
        await publish_while_paused(
            stack,
            shared_nats_url,
            [(first, first.id), (second, second.id), (first, f"again-{first.id}"), (newer, newer.id)],
        )

        await eventually(lambda: all(len(receiver.at(url)) == 3 for url in urls))
        assert max(batch_sizes) == 3  # one batch: the copy was not given to the handler
        for url in urls:
            assert sorted(e["id"] for e in receiver.events_at(url)) == sorted([first.id, second.id, newer.id])
        assert await stored(stack, EventRecord) == 3
        assert await stored(stack, Delivery) == 6
        assert await stored(stack, inbox) == 3
        # The projection kept the newer facts, as one event after another would have.
        async with stack.apps["delivery"].state.sessionmaker() as session:
            projection = await session.get(FacilityProjection, first.subject)
            assert projection is not None and projection.version == 2


async def test_a_poison_event_is_dead_lettered_alone_and_the_rest_of_its_batch_delivered(
    databases: DatabaseFactory,
    shared_nats_url: str,
    namespace: str,
    keys: dict[str, Any],
    batch_sizes: list[int],
) -> None:
    async with delivery_alone(databases, shared_nats_url, namespace, keys) as (stack, receiver, urls):
        good = [facility_event() for _ in range(2)]
        # A mobile number in a facility's name: its producer may say it, so it is delivered, masked.
        quoting = facility_event(name="托育点13812345678")
        # A district code its producer's contract refuses: never stored or sent, retried then parked.
        poison = facility_event()
        poison = poison.model_copy(update={"data": poison.data | {"district_code": "31O104"}})
        batch = [good[0], poison, quoting, good[1]]
        await publish_while_paused(stack, shared_nats_url, [(e, e.id) for e in batch])

        await eventually(lambda: all(len(receiver.at(url)) == 3 for url in urls))
        assert batch_sizes[0] == 4  # tried together first
        for url in urls:
            sent = receiver.events_at(url)
            assert [e["id"] for e in sent] == [good[0].id, quoting.id, good[1].id]
            assert sent[1]["data"]["name"] == "托育点***********"
        parked = await eventually(lambda: dead_letters(shared_nats_url, Namespace(namespace)))
        assert len(parked) == 1
        assert parked[0].headers["Cradle-Consumer"] == "delivery"
        assert parked[0].headers["Cradle-Event-Id"] == poison.id
        assert "district_code" in parked[0].headers["Cradle-Error"]
        assert await stored(stack, EventRecord, EventRecord.event_id == poison.id) == 0
        assert await stored(stack, inbox, inbox.c.event_id == poison.id) == 0
        assert await stored(stack, EventRecord) == 3
        async with stack.apps["delivery"].state.sessionmaker() as session:
            kept = (
                await session.execute(select(EventRecord.body).where(EventRecord.event_id == quoting.id))
            ).scalar_one()
        assert "13812345678" not in kept


async def test_a_batch_committed_but_never_acked_comes_back_and_is_stored_once(
    databases: DatabaseFactory,
    shared_nats_url: str,
    namespace: str,
    keys: dict[str, Any],
    batch_sizes: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acked_again: list[str] = []
    ack = Msg.ack

    async def lost_on_first_delivery(message: Msg) -> None:
        """The process dies between the commit and the acks: JetStream never hears of them."""
        if message.metadata.num_delivered == 1:
            return
        acked_again.append(CloudEvent.model_validate_json(message.data).id)
        await ack(message)

    monkeypatch.setattr(Msg, "ack", lost_on_first_delivery)
    async with delivery_alone(databases, shared_nats_url, namespace, keys, consumer_ack_wait_seconds=1.0) as (
        stack,
        receiver,
        urls,
    ):
        events = [facility_event() for _ in range(4)]
        await publish_while_paused(stack, shared_nats_url, [(e, e.id) for e in events])

        # Redelivered after the ack wait, each found in the inbox and acked.
        await eventually(lambda: sorted(acked_again) == sorted(e.id for e in events))
        assert batch_sizes == [4]
        assert await stored(stack, EventRecord) == 4
        assert await stored(stack, Delivery) == 8
        await eventually(lambda: all(len(receiver.at(url)) == 4 for url in urls))
        for url in urls:
            assert sorted(e["id"] for e in receiver.events_at(url)) == sorted(e.id for e in events)
