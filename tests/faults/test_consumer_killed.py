"""The registry, a uvicorn child process, SIGKILLed while its consumer works through a stream of
`inspection.completed` events, then restarted: every event has its effect exactly once, and the
inbox shows the redelivered ones were dropped. A second kill, with the durable consumer's state lost
as well (deleted while the service is down, so the restarted service replays the whole stream),
makes every event a redelivery: the inbox must drop all of them."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from nats.js.errors import NotFoundError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registry.models import CreditEntry, InspectionRecord
from services.registry.models import inbox as registry_inbox
from shared.db import make_engine
from shared.events.envelope import CloudEvent
from shared.events.streams import Namespace
from shared.identity import IDENTITY_HEADER, ClientKind, Identity, IdentitySigner
from tests.conftest import facility_body
from tests.faults.conftest import connect
from tests.gateway.conftest import ServiceProcess
from tests.support import DatabaseFactory, NatsProcess, eventually, small_pool_env

EVENTS = 600
KILL_AFTER = 60  # handled events before the kill: well inside the stream, whatever the machine's pace
# A restarted registry's catch-up: 600 events of ~9 database round trips each take 10–20 s on a quiet
# machine and over a minute with two suites on two cores. The test is about exactly-once, not pace.
CATCH_UP_SECONDS = 240
COMPLETED = "cradle.monitoring.inspection.completed"
APPLICANT = Identity(client_id="operator-1", kind=ClientKind.operator, scopes=["registry:write"])


@pytest.fixture
async def registry_db(databases: DatabaseFactory) -> AsyncIterator[tuple[str, AsyncEngine]]:
    url = await databases.fresh("registry")
    engine = make_engine(url)
    yield url, engine
    await engine.dispose()


async def count(engine: AsyncEngine, statement: Any) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(statement)).scalar_one())


async def handled_metrics(process: ServiceProcess) -> dict[str, float]:
    """The restarted process's own `cradle_events_handled_total`, by outcome."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{process.metrics_url}/metrics", timeout=5)).text
    outcomes: dict[str, float] = {}
    for labels, value in re.findall(r"^cradle_events_handled_total\{([^}]*)\} (\S+)$", text, re.M):
        outcome = re.search(r'outcome="([^"]+)"', labels)
        assert outcome is not None
        outcomes[outcome.group(1)] = outcomes.get(outcome.group(1), 0.0) + float(value)
    return outcomes


async def consumer_state(nats_url: str, stream: str) -> tuple[int, int, int]:
    nc = await connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info(stream, "registry")
        return info.num_pending or 0, info.num_ack_pending or 0, info.delivered.stream_seq or 0
    finally:
        await nc.close()


@pytest.mark.timeout(2 * CATCH_UP_SECONDS + 120)
async def test_a_registry_killed_mid_stream_and_restarted_applies_each_event_once(
    registry_db: tuple[str, AsyncEngine], own_nats: NatsProcess, namespace: str, keys: dict[str, Any]
) -> None:
    url, engine = registry_db
    ns = Namespace(namespace)
    stream = ns.stream("monitoring")
    process = ServiceProcess(
        {
            "REGISTRY_DATABASE_URL": url,
            **small_pool_env("registry"),  # as the in-process stacks
            "NATS_URL": own_nats.url,
            "CRADLE_EVENT_NAMESPACE": namespace,
            "CRADLE_INTERNAL_VERIFY_KEY": keys["verify"],
            "CRADLE_LOG_LEVEL": "WARNING",
            # What the killed process had fetched but not acked comes back after this long.
            "REGISTRY_CONSUMER_ACK_WAIT_SECONDS": "2",
        }
    )
    inbox_rows = (
        select(func.count()).select_from(registry_inbox).where(registry_inbox.c.consumer == "registry")
    )
    try:
        await process.start()
        applicant = {IDENTITY_HEADER: IdentitySigner(keys["signing"]).sign(APPLICANT)}
        facility_ids = []
        async with httpx.AsyncClient(base_url=process.url) as client:
            for n in range(2):
                created = await client.post(
                    "/v1/facilities", json=facility_body(name=f"托育点 {n}"), headers=applicant
                )
                assert created.status_code == 201, created.text
                facility_ids.append(created.json()["id"])

            async def bound() -> bool:
                return (await client.get("/readyz")).json().get("status") == "ready"

            await eventually(bound)

        # Monitoring's failed inspections, published as its relay would.
        events = [
            CloudEvent(
                source="/cradle/monitoring",
                type=COMPLETED,
                subject=(inspection_id := str(uuid.uuid4())),
                data={
                    "inspection_id": inspection_id,
                    "facility_id": facility_ids[n % 2],
                    "district_code": "310104",
                    "inspected_on": date.today().isoformat(),
                    "outcome": "fail",
                    "items": [{"code": "fire_safety", "passed": False, "note": f"灭火器过期 #{n}"}],
                },
                time=datetime.now(UTC),
            )
            for n in range(EVENTS)
        ]
        nc = await connect(own_nats.url)
        try:
            js = nc.jetstream()
            acks = [
                await js.publish_async(
                    ns.subject(COMPLETED), e.model_dump_json().encode(), headers={"Nats-Msg-Id": e.id}
                )
                for e in events
            ]
            await asyncio.gather(*acks)
        finally:
            await nc.close()

        # ---- kill 1: in the middle of the stream ---------------------------------------------
        await eventually(lambda: _at_least(count(engine, inbox_rows), KILL_AFTER), interval=0.01)
        process.kill()
        committed = await count(engine, inbox_rows)
        assert KILL_AFTER <= committed < EVENTS, committed

        await process.start()
        await eventually(lambda: _caught_up(own_nats.url, stream), timeout=CATCH_UP_SECONDS, interval=0.2)
        metrics = await handled_metrics(process)
        # The restarted process handled exactly what the killed one had not committed; whatever it
        # had committed but not acked came back and was dropped by the inbox.
        assert metrics.get("handled") == EVENTS - committed, (metrics, committed)
        assert metrics.get("retried", 0) == 0 and metrics.get("dead_lettered", 0) == 0, metrics
        await assert_each_event_applied_once(engine, events, facility_ids)

        # ---- kill 2: the consumer's state lost too, so the whole stream comes again --------------
        process.kill()
        nc = await connect(own_nats.url)
        try:
            assert await nc.jetstream().delete_consumer(stream, "registry")
        finally:
            await nc.close()
        await process.start()
        await eventually(lambda: _caught_up(own_nats.url, stream), timeout=CATCH_UP_SECONDS, interval=0.2)
        metrics = await handled_metrics(process)
        # Every event came again and was dropped by the inbox; a message JetStream redelivers because
        # its ack was late (a loaded machine, past ack_wait) is one more duplicate, dropped the same way.
        assert metrics.get("duplicate", 0) >= EVENTS, metrics
        assert metrics.get("handled", 0) == 0, metrics
        await assert_each_event_applied_once(engine, events, facility_ids)
    finally:
        process.kill()


async def assert_each_event_applied_once(
    engine: AsyncEngine, events: list[CloudEvent], facility_ids: list[str]
) -> None:
    ids = {e.id for e in events}
    async with engine.connect() as connection:
        inbox = (
            await connection.execute(
                select(registry_inbox.c.event_id).where(registry_inbox.c.consumer == "registry")
            )
        ).all()
        records = (await connection.execute(select(InspectionRecord.inspection_id))).all()
        entries = (
            await connection.execute(
                select(CreditEntry.source_event_id, CreditEntry.facility_id).where(
                    CreditEntry.category == "inspection_failed"
                )
            )
        ).all()
    assert len(inbox) == len(events) and {r[0] for r in inbox} == ids
    assert sorted(r[0] for r in records) == sorted(e.data["inspection_id"] for e in events)
    assert len(entries) == len(events) and {r[0] for r in entries} == ids
    assert {r[1] for r in entries} == set(facility_ids)


async def _at_least(awaitable: Any, floor: int) -> bool:
    return (await awaitable) >= floor


async def _caught_up(nats_url: str, stream: str) -> bool:
    try:
        pending, ack_pending, delivered = await consumer_state(nats_url, stream)
    except NotFoundError:  # the restarted service has not declared its consumer yet
        return False
    return pending == 0 and ack_pending == 0 and delivered >= EVENTS
