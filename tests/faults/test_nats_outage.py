"""NATS stopped for 30 s in the middle of a 10,000-event CCTV ingest, and a ban issued while it is
away. Nothing a 200 acknowledged is lost or stored twice, and the ban reaches every facility once
NATS is back: its local effect (the employments end) at once, its remote ones (one alert per
facility in monitoring, one credit entry per facility in the registry) exactly once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from services.monitoring.models import Alert, CctvEvent
from services.monitoring.models import inbox as monitoring_inbox
from services.registry.models import CreditEntry
from services.registry.models import inbox as registry_inbox
from tests.conftest import start_stack
from tests.faults.conftest import (
    employ_at,
    every_outbox_event_on_its_stream_once,
    rows,
    scalar,
    settled,
    table_count,
)
from tests.monitoring.conftest import MonitoringStack
from tests.support import DatabaseFactory, NatsProcess, eventually

OUTAGE_SECONDS = 30.0  # issue 8: "NATS stopped for 30 s"
EVENTS = 10_000
BATCH = 500
BATCHES_BEFORE = 6  # sent with NATS up; the next BATCHES_DURING while it is away; the rest after
BATCHES_DURING = 10
BAN_ISSUED = "cradle.workforce.ban.issued"


def batches(cameras: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """10,000 events over four cameras at two facilities; each batch opens with a `fall` on the
    first camera, which raises one alert (through the outbox) and then folds into it."""
    now = datetime.now(UTC).isoformat()
    out = []
    for b in range(EVENTS // BATCH):
        batch = []
        for i in range(BATCH):
            camera = cameras[0] if i == 0 else cameras[i % len(cameras)]
            kind = "fall" if i == 0 else ("heartbeat", "motion")[i % 2]
            batch.append(
                {
                    "event_id": f"ev-{b:02d}-{i:03d}-{uuid.uuid4().hex[:12]}",
                    "camera_id": camera["id"],
                    "facility_id": camera["facility_id"],
                    "type": kind,
                    "occurred_at": now,
                    "payload": {"seq": b * BATCH + i},
                }
            )
        out.append(batch)
    return out


async def test_nats_away_30s_during_ingest_and_a_ban_loses_nothing_and_repeats_nothing(
    databases: DatabaseFactory, own_nats: NatsProcess, namespace: str, keys: dict[str, Any]
) -> None:
    async with start_stack(
        databases=databases,
        nats_url=own_nats.url,
        namespace=namespace,
        keys=keys,
        services=("registry", "workforce", "monitoring"),
        overrides={"monitoring": {"jobs_interval_seconds": 0}, "workforce": {"jobs_interval_seconds": 0}},
    ) as stack:
        mon = MonitoringStack(stack)
        xuhui = (await mon.approved_facility())["id"]
        jingan = (
            await mon.approved_facility(name="静安区托育园", town_code="310106006", lat=31.23, lon=121.45)
        )["id"]
        cameras = [await mon.camera(f) for f in (xuhui, jingan, xuhui, jingan)]
        id_number = await employ_at(mon, [xuhui, jingan])
        police = await stack.headers_for(
            name="市公安局", kind="bureau", bureau="POLICE", scopes=["workforce:ban", "workforce:read"]
        )
        operator = await mon.headers("operator")
        all_batches = batches(cameras)
        replies: list[dict[str, Any]] = []

        async def send(batch: list[dict[str, Any]]) -> dict[str, Any]:
            response = await mon.send(batch)
            assert response.status_code == 200, (response.status_code, response.text[:500])
            replies.append(response.json())
            return response.json()

        for batch in all_batches[:BATCHES_BEFORE]:
            await send(batch)

        # ---- NATS goes away -----------------------------------------------------------------
        await own_nats.stop()
        loop = asyncio.get_running_loop()
        outage_started = loop.time()
        await eventually(lambda: not any(app.state.bus.connected for app in stack.apps.values()))

        ban = await stack.client.post(
            "/v1/bans",
            json={
                "id_number": id_number,
                "name": "王五",
                "reason": "虐待被看护人罪，判决已生效",
                "decision_ref": f"(2026)沪0104刑初{uuid.uuid4().hex[:4]}号",
                "role": "abuser",
            },
            headers=police,
        )
        assert ban.status_code == 201, ban.text
        assert {n["facility_id"] for n in ban.json()["notifications"]} == {xuhui, jingan}
        # The local effect needs no broker: both employments ended in the ban's transaction.
        for facility_id in (xuhui, jingan):
            staff = await stack.client.get(
                "/v1/employments", params={"facility_id": facility_id, "status": "ended"}, headers=operator
            )
            assert [e["end_reason"] for e in staff.json()["items"]] == ["ban"], staff.text
            active = await stack.client.get(
                "/v1/employments", params={"facility_id": facility_id}, headers=operator
            )
            assert active.json()["items"] == [], active.text

        # Ingest goes on, spread over the outage; one batch is sent twice (a client retrying after
        # a lost reply): the second time it is all duplicates.
        during = all_batches[BATCHES_BEFORE : BATCHES_BEFORE + BATCHES_DURING]
        for n, batch in enumerate(during):
            await asyncio.sleep(
                max(0.0, outage_started + (n + 1) * OUTAGE_SECONDS / (len(during) + 1) - loop.time())
            )
            await send(batch)
        retried = await mon.send(during[0])
        assert retried.status_code == 200 and retried.json()["accepted"] == 0
        assert retried.json()["duplicates"] == BATCH

        # Still away: the ban waits in the workforce's outbox, nothing reached the others.
        assert not any(app.state.bus.connected for app in stack.apps.values())
        assert await stack.workforce.state.relay.pending_count() > 0
        assert await table_count(stack.monitoring, Alert, Alert.type == "ban_issued") == 0
        assert (
            await table_count(stack.registry, CreditEntry, CreditEntry.source_event_type == BAN_ISSUED) == 0
        )
        await asyncio.sleep(max(0.0, outage_started + OUTAGE_SECONDS - loop.time()))

        # ---- NATS returns (the same store: streams and durable consumers survive) -------------
        await own_nats.start()
        for batch in all_batches[BATCHES_BEFORE + BATCHES_DURING :]:
            await send(batch)

        # Every event a 200 acknowledged is stored, once; the replies' counts add up.
        assert len(replies) == EVENTS // BATCH
        assert sum(r["accepted"] for r in replies) == EVENTS
        assert all(r["duplicates"] == 0 and r["rejected"] == [] for r in replies)
        stored = [row[0] for row in await rows(stack.monitoring, select(CctvEvent.event_id))]
        assert len(stored) == EVENTS
        assert set(stored) == {e["event_id"] for batch in all_batches for e in batch}
        # The falls on the first camera: one alert, folded 20 times, not re-raised by the outage.
        [fall] = [row[0] for row in await rows(stack.monitoring, select(Alert).where(Alert.type == "fall"))]
        assert fall.count == EVENTS // BATCH

        # The ban reaches both facilities once NATS is back...
        async def ban_alerts() -> bool:
            return await table_count(stack.monitoring, Alert, Alert.type == "ban_issued") == 2

        async def ban_entries() -> bool:
            entries = await table_count(
                stack.registry, CreditEntry, CreditEntry.source_event_type == BAN_ISSUED
            )
            return entries == 2

        await eventually(ban_alerts)
        await eventually(ban_entries)
        # ...and, once everything has settled, exactly once per facility.
        await settled(stack.apps, own_nats.url, namespace)
        alerts = await rows(stack.monitoring, select(Alert.facility_id).where(Alert.type == "ban_issued"))
        assert sorted(a[0] for a in alerts) == sorted([xuhui, jingan])
        entries = await rows(
            stack.registry, select(CreditEntry.facility_id).where(CreditEntry.source_event_type == BAN_ISSUED)
        )
        assert sorted(e[0] for e in entries) == sorted([xuhui, jingan])
        for app, inbox, consumer in (
            (stack.registry, registry_inbox, "registry"),
            (stack.monitoring, monitoring_inbox, "monitoring"),
        ):
            handled = await scalar(
                app,
                select(inbox.c.event_id).where(
                    inbox.c.event_type == BAN_ISSUED, inbox.c.consumer == consumer
                ),
            )
            assert handled  # one inbox row for the one ban event (scalar_one: exactly one)
        await every_outbox_event_on_its_stream_once(stack.apps, own_nats.url, namespace)
