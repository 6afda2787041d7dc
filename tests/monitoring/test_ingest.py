"""CCTV ingest: one batch, each event judged on its own; duplicates counted and ignored, also across
batches; accepted means stored."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from services.monitoring.models import Alert, CctvEvent
from tests.monitoring.conftest import MonitoringStack, cctv_event


async def test_a_mixed_batch_is_judged_event_by_event(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    other = await mon.approved_facility("other_operator")
    camera = await mon.camera(facility["id"])
    foreign_camera = await mon.camera(other["id"], who="other_operator")
    good = cctv_event(camera)
    by_external = cctv_event(camera, event_id="ext-1")
    by_external.pop("camera_id")
    by_external["external_id"] = camera["external_id"]
    first = await mon.send([good])
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 1, "duplicates": 0, "rejected": [], "alerts_raised": 0}

    batch = [
        good,  # 0: sent before: a duplicate
        by_external,  # 1: fine, named by the video system's id
        {"event_id": "broken", "type": "explosion"},  # 2: malformed
        cctv_event(camera, camera_id=str(uuid.uuid4())),  # 3: unknown camera
        cctv_event(foreign_camera, facility_id=facility["id"]),  # 4: a camera of another facility
        cctv_event(camera, occurred_at=(datetime.now(UTC) + timedelta(days=2)).isoformat()),  # 5: future
        by_external,  # 6: repeated within the batch
        cctv_event(camera, type="motion", payload={"区域": "午睡室"}),  # 7: fine, Chinese payload
    ]
    response = await mon.send(batch)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["accepted"] == 2
    assert reply["duplicates"] == 2
    rejected = {r["index"]: {e["field"] for e in r["errors"]} for r in reply["rejected"]}
    assert set(rejected) == {2, 3, 4, 5}
    assert {"type", "facility_id", "occurred_at"} <= rejected[2]
    assert rejected[3] == {"camera_id"}
    assert rejected[4] == {"facility_id"}
    assert rejected[5] == {"occurred_at"}

    async with mon.monitoring.state.sessionmaker() as session:
        stored = (await session.execute(select(CctvEvent))).scalars().all()
    assert sorted(e.event_id for e in stored) == sorted([good["event_id"], "ext-1", batch[7]["event_id"]])
    assert next(e for e in stored if e.type == "motion").payload == {"区域": "午睡室"}

    # A retry of the whole batch stores nothing new.
    again = (await mon.send(batch)).json()
    assert again["accepted"] == 0 and again["duplicates"] == 4


async def test_batch_limits_and_bodies(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    camera = await mon.camera(facility["id"])
    too_many = [cctv_event(camera) for _ in range(1001)]
    response = await mon.send(too_many)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await mon.count(select(CctvEvent).subquery()) == 0

    exactly = await mon.send([cctv_event(camera) for _ in range(1000)])
    assert exactly.status_code == 200 and exactly.json()["accepted"] == 1000

    not_a_list = await mon.send({"event_id": "x"})  # type: ignore[arg-type]
    assert not_a_list.status_code == 422
    broken = await mon.client.post(
        "/v1/cctv-events",
        content=b"[{",
        headers={**await mon.headers("operator"), "content-type": "application/json"},
    )
    assert broken.status_code == 400


async def test_an_operator_cannot_send_for_another_operators_facility(mon: MonitoringStack) -> None:
    other = await mon.approved_facility("other_operator")
    camera = await mon.camera(other["id"], who="other_operator")
    reply = (await mon.send([cctv_event(camera)], who="operator")).json()
    assert reply["accepted"] == 0
    assert reply["rejected"][0]["errors"][0]["field"] == "facility_id"
    # The city's video platform may send for any facility.
    assert (await mon.send([cctv_event(camera)], who="video_platform")).json()["accepted"] == 1


async def test_critical_events_raise_one_alert_and_repeats_fold(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    camera = await mon.camera(facility["id"])
    flood = [cctv_event(camera, type="abuse_suspected", payload={"score": 0.97}) for _ in range(50)]
    first = (await mon.send(flood[:10])).json()
    assert first["accepted"] == 10 and first["alerts_raised"] == 1
    second = (await mon.send(flood[10:])).json()
    assert second["alerts_raised"] == 0

    async with mon.monitoring.state.sessionmaker() as session:
        alerts = (await session.execute(select(Alert))).scalars().all()
    assert len(alerts) == 1
    assert alerts[0].count == 50 and alerts[0].severity == "critical"

    raised = await mon.events("cradle.monitoring.alert.raised")
    assert len(raised) == 1
    assert raised[0]["data"]["district_code"] == "310104"
    assert raised[0]["data"]["type"] == "abuse_suspected"

    # Heartbeats and motion never alert.
    quiet = (await mon.send([cctv_event(camera), cctv_event(camera, type="motion")])).json()
    assert quiet["alerts_raised"] == 0
