"""Cameras, the alert lifecycle and who sees which alert, alerts from the workforce's events, silent
cameras, the retention of routine events, and devices that publish to NATS."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import nats
from sqlalchemy import select, update

from services.monitoring.jobs import purge_routine_events, raise_offline_alerts
from services.monitoring.models import Alert, Camera, CctvEvent, Facility
from shared.events.envelope import CloudEvent
from shared.events.streams import Namespace
from tests.monitoring.conftest import MonitoringStack, cctv_event
from tests.support import eventually

ALWAYS_OPEN = [{"days": [1, 2, 3, 4, 5, 6, 7], "opens": "00:00", "closes": "23:59"}]


async def publish(mon: MonitoringStack, event_type: str, data: dict[str, Any]) -> None:
    """An event as the producing service publishes it, on its stream under the test namespace."""
    event = CloudEvent(source="/cradle/" + event_type.split(".")[1], type=event_type, data=data)
    nc = await nats.connect(mon.monitoring.state.settings.nats_url)
    try:
        await nc.jetstream().publish(
            Namespace(mon.namespace).subject(event_type),
            event.model_dump_json().encode(),
            headers={"Nats-Msg-Id": event.id},
        )
    finally:
        await nc.close()


async def alerts_of(mon: MonitoringStack, facility_id: str) -> list[Alert]:
    async with mon.monitoring.state.sessionmaker() as session:
        return list((await session.execute(select(Alert).where(Alert.facility_id == facility_id))).scalars())


async def test_cameras_are_unique_per_facility_and_private(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    camera = await mon.camera(facility["id"], external_id="NVR-01/ch3", location="sleeping_room")
    assert camera["status"] == "never_seen" and camera["location"] == "sleeping_room"
    again = await mon.client.post(
        "/v1/cameras",
        json={
            "facility_id": facility["id"],
            "location": "kitchen",
            "vendor": "大华",
            "external_id": "NVR-01/ch3",
        },
        headers=await mon.headers("operator"),
    )
    assert again.status_code == 409
    bad = await mon.client.post(
        "/v1/cameras",
        json={"facility_id": "nope", "location": "roof", "vendor": "", "external_id": "x", "extra": 1},
        headers=await mon.headers("operator"),
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} >= {"facility_id", "location", "vendor", "extra"}
    # Another operator can neither see the camera nor register one at this facility.
    other = await mon.headers("other_operator")
    assert (await mon.client.get(f"/v1/cameras/{camera['id']}", headers=other)).status_code == 404
    steal = {"facility_id": facility["id"], "location": "kitchen", "vendor": "大华", "external_id": "mine"}
    assert (await mon.client.post("/v1/cameras", json=steal, headers=other)).status_code == 404

    await mon.send([cctv_event(camera)])
    seen = (await mon.client.get(f"/v1/cameras/{camera['id']}", headers=await mon.headers("district"))).json()
    assert seen["status"] == "online" and seen["last_event_type"] == "heartbeat"

    retired = await mon.client.patch(
        f"/v1/cameras/{camera['id']}",
        json={"active": False},
        headers={**await mon.headers("operator"), "If-Match": '"1"'},
    )
    assert retired.status_code == 200 and retired.json()["active"] is False
    stale = await mon.client.patch(
        f"/v1/cameras/{camera['id']}",
        json={"label": "x"},
        headers={**await mon.headers("operator"), "If-Match": '"1"'},
    )
    assert stale.status_code == 412
    refused = (await mon.send([cctv_event(camera)])).json()
    assert refused["accepted"] == 0 and refused["rejected"][0]["errors"][0]["field"] == "camera_id"


async def test_alert_lifecycle_and_district_scoping(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    camera = await mon.camera(facility["id"])
    await mon.send([cctv_event(camera, type="smoke_fire")])
    district = await mon.headers("district")
    listed = (await mon.client.get("/v1/alerts?status=open", headers=district)).json()["items"]
    assert [a["type"] for a in listed] == ["smoke_fire"]
    alert_id = listed[0]["id"]

    # Another district neither lists nor reads it.
    other = await mon.headers("other_district")
    assert (await mon.client.get("/v1/alerts", headers=other)).json()["items"] == []
    assert (await mon.client.get(f"/v1/alerts/{alert_id}", headers=other)).status_code == 404
    assert (await mon.client.post(f"/v1/alerts/{alert_id}/ack", headers=other)).status_code == 404

    acked = await mon.client.post(f"/v1/alerts/{alert_id}/ack", json={"note": "已致电园长"}, headers=district)
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    resolved = await mon.client.post(
        f"/v1/alerts/{alert_id}/resolve", json={"note": "误报：厨房蒸汽"}, headers=district
    )
    body = resolved.json()
    assert body["status"] == "resolved"
    assert [(h["from_status"], h["to_status"]) for h in body["history"]] == [
        (None, "open"),
        ("open", "acknowledged"),
        ("acknowledged", "resolved"),
    ]
    assert body["history"][2]["note"] == "误报：厨房蒸汽"
    assert (await mon.client.post(f"/v1/alerts/{alert_id}/ack", headers=district)).status_code == 409
    changed = await mon.events("cradle.monitoring.alert.changed")
    assert [e["data"]["status"] for e in changed] == ["acknowledged", "resolved"]


async def test_workforce_events_become_alerts_once(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    ban = {
        "ban_id": str(uuid.uuid4()),
        "role": "abuser",
        "decision_ref": "沪教委〔2026〕1号",
        "issued_at": datetime.now(UTC).isoformat(),
        "practitioner_id": str(uuid.uuid4()),
        "facilities": [
            {"facility_id": facility["id"], "district_code": "310104", "employment_id": str(uuid.uuid4())}
        ],
    }
    await publish(mon, "cradle.workforce.ban.issued", ban)
    await publish(mon, "cradle.workforce.ban.issued", ban)  # re-published under a new event id
    blocked = {
        "facility_id": facility["id"],
        "district_code": "310104",
        "practitioner_id": ban["practitioner_id"],
        "reason": "ban",
        "blocked_at": datetime.now(UTC).isoformat(),
    }
    await publish(mon, "cradle.workforce.hire.blocked", blocked)
    notice = {
        "ban_id": ban["ban_id"],
        "facility_id": facility["id"],
        "district_code": "310104",
        "notified_at": datetime.now(UTC).isoformat(),
    }
    await publish(mon, "cradle.workforce.ban_notification.unacknowledged", notice)

    async def three() -> list[Alert] | None:
        found = await alerts_of(mon, facility["id"])
        return found if len(found) == 3 else None

    found = await eventually(three)
    assert {(a.type, a.severity) for a in found} == {
        ("ban_issued", "critical"),
        ("hire_blocked", "high"),
        ("ban_notification_unacknowledged", "high"),
    }
    # A carer's health certificate lapsed; another's background check came back flagged (T12).
    employment = {
        "employment_id": str(uuid.uuid4()),
        "practitioner_id": str(uuid.uuid4()),
        "facility_id": facility["id"],
        "district_code": "310104",
    }
    flagged = {**employment, "reason": "health_certificate_expired", "flagged_on": date.today().isoformat()}
    suspended = {
        **employment,
        "employment_id": str(uuid.uuid4()),
        "background_check_id": str(uuid.uuid4()),
        "suspended_at": datetime.now(UTC).isoformat(),
        "decide_by": (datetime.now(UTC) + timedelta(days=5)).isoformat(),
        "default_action": "end",
    }
    for _ in range(2):  # each re-published under a new event id: one alert each
        await publish(mon, "cradle.workforce.employment.flagged", flagged)
        await publish(mon, "cradle.workforce.employment.suspended", suspended)

    async def five() -> list[Alert] | None:
        found = await alerts_of(mon, facility["id"])
        return found if len(found) == 5 else None

    found = await eventually(five)
    by_type = {a.type: a for a in found}
    assert by_type["employment_flagged"].details["employment_id"] == flagged["employment_id"]
    assert by_type["employment_suspended"].details["decide_by"] == suspended["decide_by"]
    assert {by_type[t].severity for t in ("employment_flagged", "employment_suspended")} == {"high"}
    # The operator sees its facility's alerts too (it must act on them).
    operator = (
        await mon.client.get(
            f"/v1/alerts?facility_id={facility['id']}", headers=await mon.headers("operator")
        )
    ).json()["items"]
    assert {"employment_flagged", "employment_suspended"} <= {a["type"] for a in operator}
    staffing = {
        "facility_id": facility["id"],
        "district_code": "310104",
        "met": False,
        "shortfall": 2,
        "classes": [],
        "assessed_at": datetime.now(UTC).isoformat(),
    }
    await publish(mon, "cradle.workforce.staffing.assessed", staffing)

    async def out_of_ratio() -> bool:
        async with mon.monitoring.state.sessionmaker() as session:
            projected = await session.get(Facility, facility["id"])
            return projected.staffing_in_ratio is False and projected.staffing_shortfall == 2

    await eventually(out_of_ratio)
    district = await mon.headers("district")
    listed = (await mon.client.get(f"/v1/alerts?facility_id={facility['id']}", headers=district)).json()[
        "items"
    ]
    assert len(listed) == 5


async def test_silent_cameras_alert_during_opening_hours_only(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility(opening_hours=ALWAYS_OPEN)
    camera = await mon.camera(facility["id"])
    quiet = await mon.camera(facility["id"])
    settings = mon.monitoring.state.settings
    maker = mon.monitoring.state.sessionmaker
    # Mid-morning in Shanghai, whatever the clock says: at 23:40 the twenty minutes below would
    # cross the facility's closing time (the test once failed around Shanghai's midnight).
    shanghai = ZoneInfo("Asia/Shanghai")
    now = (datetime.now(shanghai) + timedelta(days=1)).replace(hour=10, minute=0).astimezone(UTC)
    await mon.send([cctv_event(camera), cctv_event(quiet)])
    await mon.monitoring.state.ingest.flush_presence()
    async with maker() as session, session.begin():  # both heard from at `now`
        await session.execute(
            update(Camera).where(Camera.id.in_([camera["id"], quiet["id"]])).values(last_seen_at=now)
        )
    assert await raise_offline_alerts(maker=maker, settings=settings, now=now) == 0

    # Twenty minutes on, with only `camera` heard from in between.
    later = now + timedelta(minutes=20)
    async with maker() as session, session.begin():
        await session.execute(update(Camera).where(Camera.id == camera["id"]).values(last_seen_at=later))
    assert await raise_offline_alerts(maker=maker, settings=settings, now=later) == 1
    assert await raise_offline_alerts(maker=maker, settings=settings, now=later) == 0  # one while active
    offline = [a for a in await alerts_of(mon, facility["id"]) if a.type == "camera_offline"]
    assert [a.camera_id for a in offline] == [quiet["id"]]

    # A facility closed at this hour raises nothing.
    shut = await mon.approved_facility(
        opening_hours=[{"days": [1, 2, 3, 4, 5, 6, 7], "opens": "00:00", "closes": "00:01"}]
    )
    await mon.camera(shut["id"])
    never = datetime.now(UTC).replace(hour=12) + timedelta(hours=1)
    assert await raise_offline_alerts(maker=maker, settings=settings, now=never) == 0


async def test_routine_events_are_purged_after_the_retention_alerts_kept(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    camera = await mon.camera(facility["id"])
    await mon.send([cctv_event(camera), cctv_event(camera, type="abuse_suspected")])
    settings = mon.monitoring.state.settings
    maker = mon.monitoring.state.sessionmaker
    soon = datetime.now(UTC) + timedelta(days=settings.event_retention_days - 1)
    assert await purge_routine_events(maker=maker, settings=settings, now=soon) == 0
    later = datetime.now(UTC) + timedelta(days=settings.event_retention_days + 1)
    assert await purge_routine_events(maker=maker, settings=settings, now=later) == 2
    assert await mon.count(select(CctvEvent).subquery()) == 0
    assert len(await alerts_of(mon, facility["id"])) == 1


async def test_devices_publishing_to_nats_get_the_same_treatment(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    other = await mon.approved_facility("other_operator")
    camera = await mon.camera(facility["id"])
    foreign = await mon.camera(other["id"], who="other_operator")
    ns = Namespace(mon.namespace)
    single = cctv_event(camera)
    batch = [cctv_event(camera, type="fall"), single, cctv_event(foreign, facility_id=facility["id"])]
    nc = await nats.connect(mon.monitoring.state.settings.nats_url)
    try:
        js = nc.jetstream()
        ack = await js.publish(ns.ingest_subject(facility["id"]), json.dumps(single).encode())
        assert ack.seq >= 1  # the JetStream ack: durable from here
        await js.publish(ns.ingest_subject(facility["id"]), json.dumps(batch).encode())
        await js.publish(ns.ingest_subject(facility["id"]), b"not json")
    finally:
        await nc.close()

    async def stored() -> bool:
        return await mon.count(select(CctvEvent).subquery()) == 2

    await eventually(stored)
    consumer = mon.monitoring.state.ingest_consumer
    await eventually(lambda: consumer.rejected == 2)  # the foreign camera's event and the garbage
    assert [a.type for a in await alerts_of(mon, facility["id"])] == ["fall"]


async def test_a_suspended_facility_still_stores_events_but_raises_no_offline_alert(
    mon: MonitoringStack,
) -> None:
    facility = await mon.approved_facility(opening_hours=ALWAYS_OPEN)
    camera = await mon.camera(facility["id"])
    suspended = await mon.client.post(
        f"/v1/facilities/{facility['id']}/status",
        json={"status": "suspended", "reason": "整改期间暂停收托"},
        headers=await mon.headers("EDU"),
    )
    assert suspended.status_code == 200, suspended.text
    await mon.projected(facility["id"], status="suspended")

    stored = (await mon.send([cctv_event(camera), cctv_event(camera, type="smoke_fire")])).json()
    assert stored["accepted"] == 2 and stored["alerts_raised"] == 1  # a fire is a fire, open or not
    later = datetime.now(UTC) + timedelta(hours=3)
    settings, maker = mon.monitoring.state.settings, mon.monitoring.state.sessionmaker
    assert await raise_offline_alerts(maker=maker, settings=settings, now=later) == 0
