"""Inspections: ad-hoc ones, results (once, consistent, every wrong field named), what facilities
see, rectification and the overdue job."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from services.monitoring.jobs import flag_missed_deadlines
from services.monitoring.models import Alert
from tests.monitoring.casework_support import direct, owned_facility
from tests.monitoring.conftest import MonitoringStack
from tests.support import eventually

SHANGHAI = ZoneInfo("Asia/Shanghai")


def today() -> date:
    return datetime.now(SHANGHAI).date()


async def test_a_result_is_recorded_once_and_rectified_once(
    mon: MonitoringStack, keys: dict[str, Any]
) -> None:
    facility_id = await owned_facility(mon)
    district, operator = await mon.headers("district"), await mon.headers("operator")
    async with direct(mon, keys) as api:
        inspectors = await api.inspectors(2)
    stranger = str(uuid.uuid4())
    bad = await mon.client.post(
        "/v1/inspections",
        json={"facility_id": facility_id, "inspector_ids": [inspectors[0], inspectors[0], stranger]},
        headers=district,
    )
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["inspector_ids.1", "inspector_ids.2"]
    made = await mon.client.post(
        "/v1/inspections", json={"facility_id": facility_id, "inspector_ids": inspectors}, headers=district
    )
    assert made.status_code == 201, made.text
    inspection = made.json()
    path = f"/v1/inspections/{inspection['id']}"
    assert inspection["status"] == "planned" and inspection["plan_id"] is None
    # Unannounced: the facility does not see it coming.
    assert (await mon.client.get(path, headers=operator)).status_code == 404
    assert (await mon.client.get("/v1/inspections", headers=operator)).json()["items"] == []
    assert (await mon.client.get(path, headers=await mon.headers("other_district"))).status_code == 404
    items = [
        {"code": "food_safety", "passed": True},
        {"code": "fire_safety", "passed": False, "note": "灭火器过期"},
        {"code": "staffing", "passed": True},
    ]
    sneaky = await mon.client.post(
        f"{path}/result", json={"items": items[:1], "outcome": "pass"}, headers=operator
    )
    assert sneaky.status_code == 404
    wrong = await mon.client.post(
        f"{path}/result",
        json={"items": [*items[:1], {"code": "parking", "passed": "maybe"}], "outcome": "meh", "extra": 1},
        headers=district,
    )
    assert wrong.status_code == 422
    assert {e["field"] for e in wrong.json()["errors"]} == {
        "items.1.code",
        "items.1.passed",
        "outcome",
        "extra",
    }
    for body, fields in (
        ({"items": items, "outcome": "pass"}, ["outcome"]),
        ({"items": items, "outcome": "rectify"}, ["rectify_by"]),
        ({"items": items, "outcome": "rectify", "rectify_by": str(today())}, ["rectify_by"]),
        ({"items": [items[0]], "outcome": "fail"}, ["outcome"]),
        ({"items": [items[0], items[0]], "outcome": "pass"}, ["items.1.code"]),
        (
            {"items": [items[0]], "outcome": "pass", "inspected_on": str(today() + timedelta(days=2))},
            ["inspected_on"],
        ),
        ({"items": [], "outcome": "pass"}, ["items"]),
    ):
        refused = await mon.client.post(f"{path}/result", json=body, headers=district)
        assert refused.status_code == 422, body
        assert [e["field"] for e in refused.json()["errors"]] == fields, refused.json()

    rectify_by = today() + timedelta(days=14)
    done = await mon.client.post(
        f"{path}/result",
        json={"items": items, "outcome": "rectify", "rectify_by": str(rectify_by)},
        headers=district,
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed" and done.json()["inspected_on"] == str(today())
    again = await mon.client.post(
        f"{path}/result", json={"items": items, "outcome": "pass"}, headers=district
    )
    assert again.status_code == 409
    # Now the facility sees it.
    assert (await mon.client.get(path, headers=operator)).json()["outcome"] == "rectify"
    [completed] = await mon.events("cradle.monitoring.inspection.completed")
    data = completed["data"]
    assert data["inspection_id"] == inspection["id"] and data["facility_id"] == facility_id
    assert data["district_code"] == "310104" and data["outcome"] == "rectify"
    assert data["rectify_by"] == str(rectify_by) and data["inspected_on"] == str(today())
    assert data["items"][1] == {"code": "fire_safety", "passed": False, "note": "灭火器过期"}

    # Past the deadline, not rectified: one alert and one event, however often the job runs.
    app = mon.monitoring
    maker, settings = app.state.sessionmaker, app.state.settings
    on_time = datetime.combine(rectify_by, time(12), SHANGHAI)
    assert (await flag_missed_deadlines(maker=maker, settings=settings, now=on_time))[
        "rectifications_overdue"
    ] == 0
    late = on_time + timedelta(days=1)
    assert (await flag_missed_deadlines(maker=maker, settings=settings, now=late))[
        "rectifications_overdue"
    ] == 1
    assert (await flag_missed_deadlines(maker=maker, settings=settings, now=late + timedelta(hours=1)))[
        "rectifications_overdue"
    ] == 0
    async with maker() as session:
        [alert] = (await session.execute(select(Alert).where(Alert.source == "rectification"))).scalars()
    assert alert.type == "rectification_overdue" and alert.status == "open"
    [overdue] = await mon.events("cradle.monitoring.rectification.overdue")
    assert overdue["data"] == {
        "inspection_id": inspection["id"],
        "facility_id": facility_id,
        "district_code": "310104",
        "rectify_by": str(rectify_by),
    }

    future = await mon.client.post(
        f"{path}/rectification",
        json={"rectified_on": str(today() + timedelta(days=1)), "note": "x"},
        headers=district,
    )
    assert future.status_code == 422 and future.json()["errors"][0]["field"] == "rectified_on"
    rectified = await mon.client.post(
        f"{path}/rectification", json={"rectified_on": str(today()), "note": "已更换灭火器"}, headers=district
    )
    assert rectified.status_code == 200, rectified.text
    assert rectified.json()["rectified_on"] == str(today())
    assert rectified.json()["rectification_note"] == "已更换灭火器"
    twice = await mon.client.post(
        f"{path}/rectification", json={"rectified_on": str(today()), "note": "again"}, headers=district
    )
    assert twice.status_code == 409
    [event] = await mon.events("cradle.monitoring.rectification.completed")
    assert event["data"] == {
        "inspection_id": inspection["id"],
        "facility_id": facility_id,
        "rectified_on": str(today()),
    }
    async with maker() as session:
        assert (await session.get(Alert, alert.id)).status == "resolved"

    # A pass asks for no rectification.
    other = await mon.client.post(
        "/v1/inspections", json={"facility_id": facility_id, "inspector_ids": inspectors}, headers=district
    )
    other_path = f"/v1/inspections/{other.json()['id']}"
    passed = await mon.client.post(
        f"{other_path}/result",
        json={"items": [items[0]], "outcome": "pass"},
        headers=await mon.headers("EDU"),
    )
    assert passed.status_code == 200
    nothing = await mon.client.post(
        f"{other_path}/rectification", json={"rectified_on": str(today()), "note": "x"}, headers=district
    )
    assert nothing.status_code == 409
    listed = await mon.client.get(
        "/v1/inspections", params={"facility_id": facility_id, "status": "completed"}, headers=operator
    )
    assert len(listed.json()["items"]) == 2


async def test_the_registry_records_what_the_casework_publishes(
    mon: MonitoringStack, keys: dict[str, Any]
) -> None:
    """The contracts of docs/EVENTS.md, end to end: a failed inspection, its overdue rectification,
    a late report and a confirmed incident reach the facility's public credit record."""
    facility = await mon.approved_facility()
    district = await mon.headers("district")
    async with direct(mon, keys) as api:
        inspectors = await api.inspectors(2)
    made = await mon.client.post(
        "/v1/inspections", json={"facility_id": facility["id"], "inspector_ids": inspectors}, headers=district
    )
    rectify_by = today() + timedelta(days=7)
    failed = await mon.client.post(
        f"/v1/inspections/{made.json()['id']}/result",
        json={
            "items": [{"code": "video_coverage", "passed": False, "note": "午睡室无监控"}],
            "outcome": "fail",
            "rectify_by": str(rectify_by),
        },
        headers=district,
    )
    assert failed.status_code == 200, failed.text
    app = mon.monitoring
    later = datetime.combine(rectify_by + timedelta(days=1), time(9), SHANGHAI)
    await flag_missed_deadlines(maker=app.state.sessionmaker, settings=app.state.settings, now=later)
    incident = await mon.client.post(
        "/v1/incidents",
        json={
            "facility_id": facility["id"],
            "category": "food_safety",
            "severity": "high",
            "occurred_at": (datetime.now(SHANGHAI) - timedelta(hours=30)).isoformat(),  # 24 h: late
            "description": "午餐后多名幼儿腹泻",
        },
        headers=await mon.headers("operator"),
    )
    confirmed = await mon.client.post(
        f"/v1/incidents/{incident.json()['id']}/findings",
        json={"outcome": "confirmed", "category": "food_safety", "decision_ref": "徐市监〔2026〕3号"},
        headers=district,
    )
    assert confirmed.status_code == 200, confirmed.text

    path = f"/v1/public/facilities/{facility['id']}/credit-record"

    async def recorded() -> bool:
        entries = (await mon.client.get(path)).json()["items"]
        return {"inspection_failed", "rectification_overdue", "incident_confirmed"} <= {
            e["category"] for e in entries
        }

    await eventually(recorded)
