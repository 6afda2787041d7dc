"""The slice that proves the foundation: gateway → registry → outbox → JetStream → workforce."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import jwt
import nats
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from services.registry.models import Facility
from services.registry.models import outbox as registry_outbox
from services.workforce.handlers import HANDLERS
from services.workforce.models import FacilityProjection
from services.workforce.models import inbox as workforce_inbox
from shared.events.envelope import CloudEvent
from shared.events.streams import Namespace
from shared.identity import IDENTITY_HEADER, ClientKind, Identity, IdentitySigner, generate_keypair
from tests.conftest import Stack, facility_body, start_stack
from tests.support import eventually

SUBMITTED = "cradle.registry.facility.submitted"


async def scalar(app: FastAPI, statement: Any) -> Any:
    async with app.state.sessionmaker() as session:
        return (await session.execute(statement)).scalar_one()


async def projection(app: FastAPI, facility_id: str) -> FacilityProjection | None:
    async with app.state.sessionmaker() as session:
        return await session.get(FacilityProjection, facility_id)


def counting(handler: Any, *, fail_first: int = 0) -> tuple[Any, dict[str, int]]:
    """Wrap the real handler: count attempts and completed runs, fail the first `fail_first`."""
    counts = {"attempts": 0, "completed": 0}

    async def wrapped(event: CloudEvent, session: Any) -> None:
        counts["attempts"] += 1
        if counts["attempts"] <= fail_first:
            raise RuntimeError("simulated handler failure")
        await handler(event, session)
        counts["completed"] += 1

    return wrapped, counts


async def submit(stack: Stack, **overrides: Any) -> dict[str, Any]:
    response = await stack.client.post(
        "/v1/facilities", json=facility_body(**overrides), headers=await stack.operator()
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_facility_reaches_workforce_exactly_once_even_when_the_handler_fails_once(
    databases: Any,
    shared_nats_url: str,
    namespace: str,
    keys: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler, counts = counting(HANDLERS[SUBMITTED], fail_first=1)
    monkeypatch.setitem(HANDLERS, SUBMITTED, handler)
    async with start_stack(
        databases=databases, nats_url=shared_nats_url, namespace=namespace, keys=keys
    ) as stack:
        facility = await submit(stack)

        row = await eventually(lambda: projection(stack.workforce, facility["id"]))
        assert row.name == facility["name"]
        assert row.district_code == "310104"
        assert row.status == "submitted"
        assert counts == {"attempts": 2, "completed": 1}

        # The same event delivered again (a re-publish past JetStream's duplicate window) is skipped.
        event_payload = await scalar(stack.registry, select(registry_outbox.c.payload))
        nc = await nats.connect(shared_nats_url)
        try:
            js = nc.jetstream()
            subject = Namespace(namespace).subject(SUBMITTED)
            ack = await js.publish(subject, event_payload.encode(), headers={"Nats-Msg-Id": uuid.uuid4().hex})
            assert not ack.duplicate
        finally:
            await nc.close()
        metrics = stack.workforce.state.consumers[0].metrics.events_handled
        duplicates = metrics.labels("workforce", "workforce", "duplicate")
        await eventually(lambda: duplicates._value.get() >= 1)
        assert counts == {"attempts": 2, "completed": 1}
        assert await scalar(stack.workforce, select(func.count()).select_from(workforce_inbox)) == 1
        assert await scalar(stack.workforce, select(func.count()).select_from(FacilityProjection)) == 1


async def test_with_nats_down_the_facility_is_accepted_and_delivered_once_nats_returns(
    databases: Any, own_nats: Any, namespace: str, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, counts = counting(HANDLERS[SUBMITTED])
    monkeypatch.setitem(HANDLERS, SUBMITTED, handler)
    async with start_stack(
        databases=databases, nats_url=own_nats.url, namespace=namespace, keys=keys
    ) as stack:
        await eventually(lambda: stack.registry.state.bus.connected)
        await own_nats.stop()
        await eventually(lambda: not stack.registry.state.bus.connected)

        facility = await submit(stack)

        pending = select(func.count()).select_from(registry_outbox).where(registry_outbox.c.sent_at.is_(None))
        assert await scalar(stack.registry, pending) == 1
        assert await projection(stack.workforce, facility["id"]) is None

        await own_nats.start()
        await eventually(lambda: projection(stack.workforce, facility["id"]))
        await eventually(lambda: _is_zero(scalar(stack.registry, pending)))
        assert counts["completed"] == 1
        assert await scalar(stack.workforce, select(func.count()).select_from(workforce_inbox)) == 1


async def _is_zero(awaitable: Any) -> bool:
    return (await awaitable) == 0


async def test_a_service_refuses_requests_that_did_not_come_through_the_gateway(stack: Stack) -> None:
    direct = httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.registry), base_url="http://registry")
    async with direct:
        body = facility_body()
        no_token = await direct.post("/v1/facilities", json=body)
        assert no_token.status_code == 401
        assert no_token.headers["content-type"] == "application/problem+json"

        admin = Identity(client_id="admin", kind=ClientKind.admin, scopes=["admin"])
        forged = IdentitySigner(generate_keypair()[0]).sign(admin)
        assert (
            await direct.post("/v1/facilities", json=body, headers={IDENTITY_HEADER: forged})
        ).status_code == 401

        # A client's own bearer token is not an internal identity either.
        client_token = (await stack.operator())["Authorization"]
        response = await direct.post("/v1/facilities", json=body, headers={"Authorization": client_token})
        assert response.status_code == 401

        expired = jwt.encode(
            {
                "iss": "cradle-gateway",
                "aud": "cradle-internal",
                "sub": "admin",
                "iat": 1,
                "exp": int(time.time()) - 60,
                "idn": admin.model_dump(mode="json"),
            },
            stack.gateway.state.forwarder.signer._key,
            algorithm="EdDSA",
        )
        assert (
            await direct.post("/v1/facilities", json=body, headers={IDENTITY_HEADER: expired})
        ).status_code == 401
        assert await scalar(stack.registry, select(func.count()).select_from(Facility)) == 0


async def test_a_malformed_facility_gets_a_problem_naming_every_bad_field_and_writes_nothing(
    stack: Stack,
) -> None:
    body = facility_body(
        name="",
        kind="castle",
        lat=45.0,
        service_modes=[],
        capacity={"infant": -1, "toddler": 5},
    )
    del body["address"]
    response = await stack.client.post("/v1/facilities", json=body, headers=await stack.operator())

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["title"] and problem["type"]
    named = {e["field"] for e in problem["errors"]}
    assert named == {
        "name",
        "kind",
        "lat",
        "service_modes",
        "capacity.infant",
        "capacity.preschool",
        "address",
    }
    assert all(e["message"] for e in problem["errors"])
    assert await scalar(stack.registry, select(func.count()).select_from(Facility)) == 0
    assert await scalar(stack.registry, select(func.count()).select_from(registry_outbox)) == 0


async def test_an_unknown_town_is_a_422_on_town_code(stack: Stack) -> None:
    response = await stack.client.post(
        "/v1/facilities", json=facility_body(town_code="310199999"), headers=await stack.operator()
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["town_code"]
    assert await scalar(stack.registry, select(func.count()).select_from(registry_outbox)) == 0


async def test_the_event_is_a_cloudevent_carrying_the_request_id(stack: Stack) -> None:
    response = await stack.client.post(
        "/v1/facilities",
        json=facility_body(),
        headers={**await stack.operator(), "X-Request-Id": "req-slice-1"},
    )
    assert response.status_code == 201
    assert response.headers["x-request-id"] == "req-slice-1"
    event = json.loads(await scalar(stack.registry, select(registry_outbox.c.payload)))
    assert event["specversion"] == "1.0"
    assert event["type"] == SUBMITTED
    assert event["source"] == "/cradle/registry"
    assert event["subject"] == response.json()["id"]
    assert event["requestid"] == "req-slice-1"
    assert event["data"]["district_code"] == "310104"
