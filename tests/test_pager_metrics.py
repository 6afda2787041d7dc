"""What a pager reads, each caused and then read from the process's metrics listener: the outbox's
backlog and its oldest row's age, a durable consumer's lag, ban checks and ingested events by
outcome, and the process metrics. (Dead letters: tests/contracts/test_dead_letters.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from tests.conftest import facility_body, start_stack
from tests.monitoring.conftest import MonitoringStack, cctv_event
from tests.support import (
    DatabaseFactory,
    NatsProcess,
    eventually,
    listener_client,
    metric_value,
    provision_namespace,
)

SPECIMEN_ID = "11010519491231002X"  # a valid GB 11643 number, banned by nobody


async def scrape(app: FastAPI) -> str:
    async with listener_client(app) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_the_outbox_backlog_and_its_age_while_nats_is_away(
    databases: DatabaseFactory, namespace: str, keys: dict[str, Any], tmp_path: Path
) -> None:
    nats = NatsProcess(tmp_path / "nats")  # nothing listens on its port yet
    async with start_stack(
        databases=databases, nats_url=nats.url, namespace=namespace, keys=keys, provision=False
    ) as stack:
        registry = stack.registry
        assert metric_value(await scrape(registry), "cradle_outbox_backlog", service="registry") == 0
        for _ in range(2):
            response = await stack.client.post(
                "/v1/facilities", json=facility_body(), headers=await stack.operator()
            )
            assert response.status_code == 201, response.text

        async def waiting() -> str | None:
            text = await scrape(registry)
            age = metric_value(text, "cradle_outbox_oldest_age_seconds", service="registry")
            return text if age and age > 0 else None

        text = await eventually(waiting)
        assert metric_value(text, "cradle_outbox_backlog", service="registry") == 2

        await nats.start()
        try:
            await provision_namespace(nats.url, namespace)

            async def drained() -> bool:
                text = await scrape(registry)
                return (
                    metric_value(text, "cradle_outbox_backlog", service="registry") == 0
                    and metric_value(text, "cradle_outbox_oldest_age_seconds", service="registry") == 0
                )

            await eventually(drained)
        finally:
            await nats.stop()


async def test_consumer_lag_ban_checks_ingest_and_process_metrics(
    databases: DatabaseFactory, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> None:
    async with start_stack(
        databases=databases,
        nats_url=shared_nats_url,
        namespace=namespace,
        keys=keys,
        services=("registry", "workforce", "monitoring"),
        overrides={"monitoring": {"jobs_interval_seconds": 0}, "workforce": {"jobs_interval_seconds": 0}},
    ) as stack:
        mon = MonitoringStack(stack)
        workforce = stack.workforce
        lag = {"service": "workforce", "stream": f"{namespace.upper()}_REGISTRY", "consumer": "workforce"}

        # Lag: the workforce's durable on the registry's stream, while the workforce reads nothing.
        async def bound() -> bool:
            return metric_value(await scrape(workforce), "cradle_consumer_pending_messages", **lag) == 0

        await eventually(bound)
        for consumer in workforce.state.consumers:
            await consumer.stop()
        for _ in range(3):
            response = await stack.client.post(
                "/v1/facilities", json=facility_body(), headers=await stack.operator()
            )
            assert response.status_code == 201, response.text

        async def behind() -> bool:
            return metric_value(await scrape(workforce), "cradle_consumer_pending_messages", **lag) == 3

        await eventually(behind)

        # Ban checks, by outcome, counted once their audit row is committed.
        checker = await stack.headers_for(
            name="教委核查", kind="bureau", bureau="EDU", scopes=["workforce:read"]
        )
        for id_number, status in ((SPECIMEN_ID, 200), ("110105194912310021", 422)):
            response = await stack.client.post(
                "/v1/ban-checks", json={"id_number": id_number}, headers=checker
            )
            assert response.status_code == status, response.text
        text = await scrape(workforce)
        assert metric_value(text, "cradle_ban_checks_total", outcome="not_banned") == 1
        assert metric_value(text, "cradle_ban_checks_total", outcome="invalid") == 1
        assert (metric_value(text, "process_resident_memory_bytes") or 0) > 0
        assert metric_value(text, "process_cpu_seconds_total") is not None

        # Ingested events, by outcome: stored, the same again (a duplicate), one that is not an event.
        facility = await mon.approved_facility()
        camera = await mon.camera(facility["id"])
        event = cctv_event(camera)
        assert (await mon.send([event])).json()["accepted"] == 1
        reply = (await mon.send([event, {"event_id": "not-an-event"}])).json()
        assert reply["duplicates"] == 1 and len(reply["rejected"]) == 1
        text = await scrape(stack.monitoring)
        assert metric_value(text, "cradle_ingest_events_total", outcome="stored") == 1
        assert metric_value(text, "cradle_ingest_events_total", outcome="duplicate") == 1
        assert metric_value(text, "cradle_ingest_events_total", outcome="rejected") == 1
