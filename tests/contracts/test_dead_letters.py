"""A dead letter is never silent: a critical alert for the city and the facility's district, the
consumer's service degraded on /readyz, a metric; and `cradle dlq replay`, once the consumer is
fixed, makes the effect happen exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import nats
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from typer.testing import CliRunner

from cradle.cli import app as cradle
from cradle.dlq import list_letters, replay_letters
from services.monitoring.models import Alert
from services.workforce.handlers import HANDLERS
from services.workforce.models import FacilityProjection, inbox
from shared.events.envelope import CloudEvent
from tests.conftest import facility_body, start_stack
from tests.monitoring.conftest import MonitoringStack
from tests.support import DatabaseFactory, eventually, listener_client, metric_value

SUBMITTED = "cradle.registry.facility.submitted"


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


async def readiness(app: FastAPI) -> dict[str, Any]:
    async with listener_client(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    return response.json()


async def dead_letter_metric(app: FastAPI, name: str = "cradle_dead_letters_total") -> float:
    async with listener_client(app) as client:
        text = (await client.get("/metrics")).text
    return metric_value(text, name, consumer="workforce") or 0.0


async def dead_letter_alerts(mon: MonitoringStack, who: str) -> list[dict[str, Any]]:
    response = await mon.client.get(
        "/v1/alerts", params={"type": "dead_letter"}, headers=await mon.headers(who)
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_a_dead_letter_alerts_degrades_and_is_replayed_once(
    databases: DatabaseFactory,
    shared_nats_url: str,
    namespace: str,
    keys: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = HANDLERS[SUBMITTED]
    state: dict[str, Any] = {"broken": True, "handled": []}

    async def until_fixed(event: CloudEvent, session: Any) -> None:
        if state["broken"]:
            raise RuntimeError("the projection is broken")
        state["handled"].append(event.id)
        await original(event, session)

    monkeypatch.setitem(HANDLERS, SUBMITTED, until_fixed)
    async with start_stack(
        databases=databases,
        nats_url=shared_nats_url,
        namespace=namespace,
        keys=keys,
        services=("registry", "workforce", "monitoring"),
        overrides={"monitoring": {"jobs_interval_seconds": 0}, "workforce": {"jobs_interval_seconds": 0}},
    ) as stack:
        mon = MonitoringStack(stack)
        created = await mon.client.post(
            "/v1/facilities", json=facility_body(), headers=await mon.headers("operator")
        )
        assert created.status_code == 201, created.text
        facility_id = created.json()["id"]

        # Parked after max_deliver attempts: the city and the facility's district see a critical alert.
        [alert] = await eventually(lambda: dead_letter_alerts(mon, "district"))
        assert alert["severity"] == "critical" and alert["facility_id"] == facility_id
        assert [a["id"] for a in await dead_letter_alerts(mon, "EDU")] == [alert["id"]]
        assert await dead_letter_alerts(mon, "other_district") == []

        ready = await readiness(stack.workforce)
        assert ready["status"] == "degraded"
        assert "workforce: 1" in ready["checks"]["dead_letters"]
        assert any(reason.startswith("dead_letters: 1 dead letter") for reason in ready["reasons"])
        assert (await readiness(stack.registry))["status"] == "ready"
        assert await dead_letter_metric(stack.workforce) == 1.0
        assert await dead_letter_metric(stack.workforce, "cradle_dead_letters_waiting") == 1.0

        [letter] = await list_letters(url=shared_nats_url, namespace=namespace)
        assert (letter.service, letter.consumer, letter.event_type) == ("workforce", "workforce", SUBMITTED)
        assert letter.facility_id == facility_id and "the projection is broken" in letter.reason
        listed = await asyncio.to_thread(
            CliRunner().invoke, cradle, ["dlq", "list", "--url", shared_nats_url, "--namespace", namespace]
        )
        assert listed.exit_code == 0, listed.output
        assert letter.event_id is not None and letter.event_id[:8] in listed.output
        shown = await asyncio.to_thread(
            CliRunner().invoke,
            cradle,
            ["dlq", "show", str(letter.seq), "--url", shared_nats_url, "--namespace", namespace],
        )
        assert shown.exit_code == 0, shown.output
        assert letter.event_id in shown.output and "the projection is broken" in shown.output

        # Fixed: the replay makes the effect happen, once, and the service is ready again.
        state["broken"] = False
        [replayed] = await replay_letters(url=shared_nats_url, namespace=namespace)
        assert replayed.replayed and replayed.event_id == letter.event_id

        async def projected() -> FacilityProjection | None:
            async with stack.workforce.state.sessionmaker() as session:
                return await session.get(FacilityProjection, facility_id)

        assert (await eventually(projected)).status == "submitted"
        assert (await eventually(_ready(stack.workforce)))["status"] == "ready"
        assert await dead_letter_metric(stack.workforce, "cradle_dead_letters_waiting") == 0.0

        # Replaying again does nothing: the letter is no longer waiting; and should a replay be
        # published twice (cut short before it was recorded), the consumer's inbox drops the copy.
        assert await replay_letters(url=shared_nats_url, namespace=namespace) == []
        with pytest.raises(LookupError):
            await replay_letters(url=shared_nats_url, namespace=namespace, seqs=[letter.seq])
        nc = await nats.connect(shared_nats_url)
        try:
            await nc.jetstream().publish(
                letter.original_subject, letter.data, headers={"Nats-Msg-Id": "a-second-replay"}
            )
        finally:
            await nc.close()
        await asyncio.sleep(1.0)
        assert state["handled"] == [letter.event_id]
        async with stack.workforce.state.sessionmaker() as session:
            handled = select(func.count()).select_from(inbox).where(inbox.c.event_id == letter.event_id)
            assert (await session.execute(handled)).scalar_one() == 1
        # The replay's record is not a new dead letter: still one alert.
        async with stack.monitoring.state.sessionmaker() as session:
            alerts = select(func.count()).select_from(Alert).where(Alert.type == "dead_letter")
            assert (await session.execute(alerts)).scalar_one() == 1
        records = await list_letters(url=shared_nats_url, namespace=namespace, include_replayed=True)
        assert [(r.event_id, r.replayed) for r in records] == [(letter.event_id, True)]


def _ready(app: FastAPI) -> Any:
    async def check() -> dict[str, Any] | None:
        body = await readiness(app)
        return body if body["status"] == "ready" else None

    return check
