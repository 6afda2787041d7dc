"""A three-node NATS cluster in production shape (operator mode, authenticated routes, each process
with its own credential, the device with one the gateway's issuer made; JetStream clustered, every
stream with 3 replicas, the services given the three URLs) loses a node — the one leading the
registry's and the ingest stream — in the middle of event traffic: devices publishing CCTV events to
JetStream, CCTV batches posted through the gateway, facilities submitted (each announced through the
registry's outbox to the workforce and monitoring). Nothing acknowledged is lost, nothing is stored
or handled twice."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import pytest
from sqlalchemy import select

from gateway.device_credentials import DeviceIssuer
from services.monitoring.models import CctvEvent
from services.monitoring.models import Facility as MonitoringFacility
from services.monitoring.models import inbox as monitoring_inbox
from services.registry.models import outbox as registry_outbox
from services.workforce.models import FacilityProjection
from services.workforce.models import inbox as workforce_inbox
from shared.events.permissions import inbox_prefix
from shared.events.streams import Namespace
from tests.conftest import facility_body, start_stack
from tests.faults.conftest import (
    NatsCluster,
    connect,
    every_outbox_event_on_its_stream_once,
    rows,
    settled,
    table_count,
)
from tests.monitoring.conftest import MonitoringStack
from tests.support import DatabaseFactory, eventually

DEVICE_MESSAGES = 40  # JetStream messages of DEVICE_BATCH events each, as a video system sends them
DEVICE_BATCH = 100
HTTP_BATCHES = 8  # POST /v1/cctv-events batches of HTTP_BATCH
HTTP_BATCH = 500
FACILITIES = 30
KILL_AT = 0.4  # of the traffic sent before the node dies
SUBMITTED = "cradle.registry.facility.submitted"


def events_for(camera: dict[str, Any], n: int, tag: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "event_id": f"{tag}-{i:03d}-{uuid.uuid4().hex[:12]}",
            "camera_id": camera["id"],
            "facility_id": camera["facility_id"],
            "type": "fall" if i == 0 else "heartbeat",
            "occurred_at": now,
            "payload": {},
        }
        for i in range(n)
    ]


async def lead(nats_url: str, stream: str, server: str, creds: Path | None) -> None:
    """Move a stream's leadership to `server` (a leader step-down naming the preferred node)."""
    nc = await connect(nats_url, creds)
    try:
        js = nc.jetstream()

        async def leads() -> bool:
            leader = (await js.stream_info(stream)).cluster.leader
            if leader != server:
                request = json.dumps({"placement": {"preferred": server}}).encode()
                await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", request, timeout=5)
            return (await js.stream_info(stream)).cluster.leader == server

        await eventually(leads, interval=0.5)
    finally:
        await nc.close()


async def publish_until_acked(js: Any, subject: str, body: bytes, msg_id: str) -> None:
    """A device's publish: retried (same Nats-Msg-Id) until JetStream acknowledges it."""
    last: Exception | None = None
    for _ in range(60):
        try:
            await js.publish(subject, body, headers={"Nats-Msg-Id": msg_id}, timeout=2)
            return
        except Exception as exc:  # leader election, a reconnect: try again
            last = exc
            await asyncio.sleep(0.25)
    raise AssertionError(f"{msg_id} never acknowledged: {last!r}")


async def test_a_cluster_node_killed_under_event_traffic_loses_and_repeats_nothing(
    databases: DatabaseFactory,
    nats_cluster: NatsCluster,
    namespace: str,
    keys: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    ns = Namespace(namespace)
    trust = nats_cluster.trust
    assert trust is not None
    admin_creds = nats_cluster.admin_creds
    monkeypatch.setenv("NATS_CREDS", str(trust.creds_path("gateway")))  # the stack's gateway
    replicated = {"nats_replicas": 3}
    own = {name: {"nats_creds": trust.creds_path(name)} for name in ("registry", "workforce", "monitoring")}
    async with start_stack(
        databases=databases,
        nats_url=nats_cluster.url,
        namespace=namespace,
        keys=keys,
        services=("registry", "workforce", "monitoring"),
        overrides={
            "registry": replicated | own["registry"],
            "workforce": replicated | own["workforce"] | {"jobs_interval_seconds": 0},
            "monitoring": replicated | own["monitoring"] | {"jobs_interval_seconds": 0},
        },
        nats_admin_creds=admin_creds,
    ) as stack:
        mon = MonitoringStack(stack)
        facility = (await mon.approved_facility())["id"]
        device_camera = await mon.camera(facility)
        http_camera = await mon.camera(facility)
        applicant = await stack.operator()

        device_creds = tmp_path / "device.creds"
        device_id = str(uuid.uuid4())
        issuer = DeviceIssuer.from_file(trust.device_issuer)
        device_creds.write_text(issuer.issue(facility_id=facility, credential_id=device_id).creds)

        nc = await connect(nats_cluster.url, admin_creds)
        try:
            js = nc.jetstream()
            for stream in (ns.stream("registry"), ns.stream("workforce"), ns.ingest_stream):
                info = await js.stream_info(stream)
                assert info.config.num_replicas == 3 and len(info.cluster.replicas or []) == 2, info.cluster
        finally:
            await nc.close()
        victim = nats_cluster.names[0]
        for stream in (ns.stream("registry"), ns.ingest_stream):
            await lead(nats_cluster.url, stream, victim, admin_creds)

        device_messages = [
            events_for(device_camera, DEVICE_BATCH, f"dev{m:02d}") for m in range(DEVICE_MESSAGES)
        ]
        http_batches = [events_for(http_camera, HTTP_BATCH, f"http{b}") for b in range(HTTP_BATCHES)]
        killed = asyncio.Event()
        progress = {"device": 0, "http": 0, "facilities": 0}
        submitted: list[str] = []
        http_accepted: list[int] = []

        def tick(kind: str, total: int) -> None:
            progress[kind] += 1
            if progress[kind] >= total * KILL_AT and not killed.is_set():
                killed.set()
                nats_cluster.kill(0)

        async def device() -> None:
            nc = await nats.connect(
                nats_cluster.url.split(","),
                connect_timeout=2,
                max_reconnect_attempts=5,
                reconnect_time_wait=0.25,
                user_credentials=str(device_creds),
                inbox_prefix=inbox_prefix(device_id),
            )
            try:
                js = nc.jetstream()
                for m, events in enumerate(device_messages):
                    await publish_until_acked(
                        js,
                        ns.ingest_subject(facility),
                        json.dumps(events).encode(),
                        f"device-msg-{m}-{namespace}",
                    )
                    tick("device", DEVICE_MESSAGES)
                    await asyncio.sleep(0.1)
            finally:
                await nc.close()

        async def http() -> None:
            for batch in http_batches:
                response = await mon.send(batch)
                assert response.status_code == 200, response.text[:300]
                http_accepted.append(response.json()["accepted"])
                tick("http", HTTP_BATCHES)
                await asyncio.sleep(0.3)

        async def applications() -> None:
            for n in range(FACILITIES):
                created = await stack.client.post(
                    "/v1/facilities", json=facility_body(name=f"集群托育点 {n}"), headers=applicant
                )
                assert created.status_code == 201, created.text
                submitted.append(created.json()["id"])
                tick("facilities", FACILITIES)
                await asyncio.sleep(0.1)

        await asyncio.gather(device(), http(), applications())
        assert killed.is_set()
        assert nats_cluster.processes[0] is None  # the node is gone for the rest of the test

        # ---- every event stored, once ------------------------------------------------------
        sent = {e["event_id"] for batch in (*device_messages, *http_batches) for e in batch}

        async def all_stored() -> bool:
            return await table_count(stack.monitoring, CctvEvent) >= len(sent)

        await eventually(all_stored, timeout=60, interval=0.25)
        await settled(stack.apps, nats_cluster.url, namespace, timeout=90, creds=admin_creds)
        stored = [row[0] for row in await rows(stack.monitoring, select(CctvEvent.event_id))]
        assert len(stored) == len(sent) and set(stored) == sent
        assert sum(http_accepted) == HTTP_BATCHES * HTTP_BATCH

        # ---- every facility announced through the outbox reached both consumers, once -----------
        for column, app in (
            (FacilityProjection.facility_id, stack.workforce),
            (MonitoringFacility.id, stack.monitoring),
        ):
            known = {row[0] for row in await rows(app, select(column))}
            assert set(submitted) <= known, (
                f"{len(set(submitted) - known)} facilities never reached {app.title}"
            )
        announced = await table_count(
            stack.registry, registry_outbox, registry_outbox.c.subject == ns.subject(SUBMITTED)
        )
        assert announced == FACILITIES + 1
        for app, inbox, consumer in (
            (stack.workforce, workforce_inbox, "workforce"),
            (stack.monitoring, monitoring_inbox, "monitoring"),
        ):
            handled = await table_count(
                app, inbox, inbox.c.consumer == consumer, inbox.c.event_type == SUBMITTED
            )
            assert handled == announced, (consumer, handled, announced)
        await every_outbox_event_on_its_stream_once(stack.apps, nats_cluster.url, namespace, admin_creds)
