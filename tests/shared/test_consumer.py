"""The consumer runner's failure paths, through the real workforce service and NATS."""

from __future__ import annotations

from typing import Any

import nats
import pytest
from sqlalchemy import func, select

from services.workforce.handlers import HANDLERS
from services.workforce.models import FacilityProjection, inbox
from shared.events.envelope import CloudEvent
from shared.events.streams import Namespace
from tests.conftest import facility_body, start_stack
from tests.support import eventually

SUBMITTED = "cradle.registry.facility.submitted"


async def dead_letters(url: str, ns: Namespace) -> list[Any]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        count = (await js.stream_info(ns.dead_letter_stream)).state.messages
        return [await js.get_msg(ns.dead_letter_stream, seq) for seq in range(1, count + 1)]
    finally:
        await nc.close()


async def test_an_event_that_always_fails_is_dead_lettered_after_max_deliver(
    databases: Any,
    shared_nats_url: str,
    namespace: str,
    keys: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[str] = []

    async def always_fails(event: CloudEvent, session: Any) -> None:
        attempts.append(event.id)
        raise ValueError("cannot handle this")

    monkeypatch.setitem(HANDLERS, SUBMITTED, always_fails)
    ns = Namespace(namespace)
    async with start_stack(
        databases=databases, nats_url=shared_nats_url, namespace=namespace, keys=keys
    ) as stack:
        response = await stack.client.post(
            "/v1/facilities", json=facility_body(), headers=await stack.operator()
        )
        assert response.status_code == 201

        parked = await eventually(lambda: dead_letters(shared_nats_url, ns))
        assert len(attempts) == 4  # consumer_max_deliver in the test settings
        assert len(parked) == 1
        assert parked[0].headers["Cradle-Consumer"] == "workforce"
        assert "cannot handle this" in parked[0].headers["Cradle-Error"]
        assert CloudEvent.model_validate_json(parked[0].data).id == attempts[0]
        async with stack.workforce.state.sessionmaker() as session:
            assert (await session.execute(select(func.count()).select_from(inbox))).scalar_one() == 0
            assert (
                await session.execute(select(func.count()).select_from(FacilityProjection))
            ).scalar_one() == 0


async def test_an_unreadable_message_is_parked_at_once_and_the_next_one_still_flows(
    databases: Any, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> None:
    ns = Namespace(namespace)
    async with start_stack(
        databases=databases, nats_url=shared_nats_url, namespace=namespace, keys=keys
    ) as stack:
        await eventually(lambda: stack.workforce.state.bus.connected)
        nc = await nats.connect(shared_nats_url)
        try:
            await nc.jetstream().publish(ns.subject(SUBMITTED), b"not json at all")
        finally:
            await nc.close()
        parked = await eventually(lambda: dead_letters(shared_nats_url, ns))
        assert parked[0].data == b"not json at all"

        response = await stack.client.post(
            "/v1/facilities", json=facility_body(), headers=await stack.operator()
        )
        facility_id = response.json()["id"]

        async def projected() -> FacilityProjection | None:
            async with stack.workforce.state.sessionmaker() as session:
                return await session.get(FacilityProjection, facility_id)

        assert await eventually(projected)


async def test_a_payload_breaking_its_contract_is_parked_at_once_with_the_reason(
    databases: Any, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> None:
    """No retry can mend a payload: it is dead-lettered on its first delivery, saying why, and the
    event itself travels unchanged for a replay once the producer or the consumer is fixed."""
    ns = Namespace(namespace)
    async with start_stack(
        databases=databases, nats_url=shared_nats_url, namespace=namespace, keys=keys
    ) as stack:
        await eventually(lambda: stack.workforce.state.bus.connected)
        broken = CloudEvent(
            source="/cradle/registry",
            type=SUBMITTED,
            data={"facility_id": "not-a-uuid", "name": "托育点", "status": "submitted", "version": 1},
        )
        nc = await nats.connect(shared_nats_url)
        try:
            await nc.jetstream().publish(ns.subject(SUBMITTED), broken.model_dump_json().encode())
        finally:
            await nc.close()
        [parked] = await eventually(lambda: dead_letters(shared_nats_url, ns))
        headers = parked.headers or {}
        assert headers["Cradle-Event-Id"] == broken.id and headers["Cradle-Event-Type"] == SUBMITTED
        assert headers["Cradle-Original-Subject"] == ns.subject(SUBMITTED)
        assert "breaks the contract" in headers["Cradle-Error"] and "facility_id" in headers["Cradle-Error"]
        assert CloudEvent.model_validate_json(parked.data) == broken
        async with stack.workforce.state.sessionmaker() as session:
            assert (await session.execute(select(func.count()).select_from(inbox))).scalar_one() == 0
