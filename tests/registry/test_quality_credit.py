"""Quality (T22), the credit record (诚信记录) and the public inspection history, including the
entries written from the monitoring and workforce services' events on real NATS."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import nats
from sqlalchemy import func, select

from services.registry.models import CreditEntry
from shared.events.envelope import CloudEvent
from shared.events.streams import Namespace
from tests.registry.conftest import Registry
from tests.support import eventually


async def publish(
    registry: Registry, event_type: str, data: dict[str, Any], *, event_id: str | None = None
) -> str:
    """Publish an event as the producing service would, on its stream under the test namespace."""
    source = event_type.split(".")[1]
    event = CloudEvent(
        id=event_id or str(uuid.uuid4()), source=f"/cradle/{source}", type=event_type, data=data
    )
    nc = await nats.connect(registry.stack.registry.state.settings.nats_url)
    try:
        await nc.jetstream().publish(
            Namespace(registry.stack.namespace).subject(event_type),
            event.model_dump_json().encode(),
            # A fresh message id each time: a re-publish past JetStream's dedup window.
            headers={"Nats-Msg-Id": uuid.uuid4().hex},
        )
    finally:
        await nc.close()
    return event.id


async def credit(registry: Registry, facility_id: str) -> list[dict[str, Any]]:
    return (await registry.client.get(f"/v1/public/facilities/{facility_id}/credit-record")).json()["items"]


async def handled(registry: Registry, count: int) -> None:
    """Wait until the registry's consumers have handled (or skipped as repeats) `count` events."""
    metric = registry.stack.registry.state.consumers[0].metrics.events_handled

    def total() -> float:
        return sum(
            sample.value
            for family in metric.collect()
            for sample in family.samples
            if sample.name.endswith("_total") and sample.labels["outcome"] in ("handled", "duplicate")
        )

    await eventually(lambda: total() >= count)


async def test_assessments_and_the_current_grade(registry: Registry) -> None:
    facility = await registry.approved()
    path = f"/v1/facilities/{facility['id']}/assessments"
    today = date.today()

    def body(method: str, grade: str, days_ago: int) -> dict[str, Any]:
        return {
            "method": method,
            "scores": {"safety": 92, "care": 88.5},
            "grade": grade,
            "assessed_on": str(today - timedelta(days=days_ago)),
            "assessor": "上海市托育服务评估中心",
        }

    own = await registry.client.post(path, json=body("self", "A", 1), headers=registry["operator"])
    assert own.status_code == 201
    commissioned = await registry.client.post(
        path, json=body("commissioned", "B", 30), headers=registry["EDU"]
    )
    assert commissioned.status_code == 201
    older = await registry.client.post(path, json=body("commissioned", "C", 400), headers=registry["EDU"])
    assert older.status_code == 201
    current = (await registry.client.get(f"/v1/facilities/{facility['id']}", headers=registry["EDU"])).json()
    assert current["grade"] == "B"  # the latest commissioned one, not the self-assessment
    assert len((await registry.client.get(path, headers=registry["operator"])).json()["items"]) == 3
    first = (await registry.client.get(path, params={"limit": 2}, headers=registry["operator"])).json()
    rest = await registry.client.get(
        path, params={"limit": 2, "cursor": first["next_cursor"]}, headers=registry["operator"]
    )
    assert [a["grade"] for a in first["items"] + rest.json()["items"]] == ["A", "B", "C"]  # newest first
    assert rest.json()["next_cursor"] is None
    assert len(await registry.events("cradle.registry.assessment.recorded")) == 3

    # An operator cannot record a commissioned assessment; bad scores and future dates are named.
    assert (
        await registry.client.post(path, json=body("commissioned", "A", 1), headers=registry["operator"])
    ).status_code == 403
    bad = await registry.client.post(
        path,
        json={**body("self", "E", -5), "scores": {"safety": 120}},
        headers=registry["operator"],
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"grade", "assessed_on", "scores"}


async def test_edu_designates_demonstration_facilities_on_the_record(registry: Registry) -> None:
    facility = await registry.approved()
    path = f"/v1/facilities/{facility['id']}/demonstration"
    body = {"designated": True, "reason": "2026 年度市级示范性托育机构"}
    assert (await registry.client.post(path, json=body, headers=registry["district"])).status_code == 403
    designated = await registry.client.post(path, json=body, headers=registry["EDU"])
    assert designated.json()["is_demonstration"] is True
    [entry] = await credit(registry, facility["id"])
    assert entry["polarity"] == "positive" and entry["category"] == "demonstration"


async def test_edu_writes_dated_public_entries(registry: Registry) -> None:
    facility = await registry.approved()
    path = f"/v1/facilities/{facility['id']}/credit-record"
    entry = {
        "polarity": "negative",
        "category": "fee_violation",
        "title": "违规收费 Charged fees above the inclusive cap",
        "occurred_on": str(date.today()),
    }
    assert (await registry.client.post(path, json=entry, headers=registry["operator"])).status_code == 403
    assert (await registry.client.post(path, json=entry, headers=registry["EDU"])).status_code == 201
    future = await registry.client.post(
        path, json={**entry, "occurred_on": str(date.today() + timedelta(days=3))}, headers=registry["EDU"]
    )
    assert future.status_code == 422
    assert [e["title"] for e in await credit(registry, facility["id"])] == [entry["title"]]


async def test_a_failed_inspection_is_public_and_on_the_record_once(registry: Registry) -> None:
    facility = await registry.approved()
    inspected_on = date.today() - timedelta(days=10)
    data = {
        "inspection_id": str(uuid.uuid4()),
        "facility_id": facility["id"],
        "district_code": "310104",
        "inspected_on": str(inspected_on),
        "outcome": "fail",
        "items": [
            {"code": "food_safety", "passed": False, "note": "留样不足 48 小时"},
            {"code": "fire_safety", "passed": True},
            {"code": "video_coverage", "passed": False},
        ],
        "rectify_by": str(date.today() + timedelta(days=20)),
    }
    event_id = await publish(registry, "cradle.monitoring.inspection.completed", data)
    await publish(registry, "cradle.monitoring.inspection.completed", data, event_id=event_id)  # replayed
    await handled(registry, 2)

    page = (await registry.client.get(f"/v1/public/facilities/{facility['id']}")).json()
    [inspection] = page["inspections"]
    assert inspection["outcome"] == "fail" and inspection["rectified"] is False
    assert [i["description"] for i in inspection["failed_items"]] == [
        "食品安全 Food safety",
        "视频监控覆盖 Video coverage",
    ]
    assert inspection["failed_items"][0]["note"] == "留样不足 48 小时"
    [entry] = page["credit_record"]
    assert entry["category"] == "inspection_failed"
    assert entry["source_event_type"] == "cradle.monitoring.inspection.completed"

    await publish(
        registry,
        "cradle.monitoring.rectification.completed",
        {
            "inspection_id": data["inspection_id"],
            "facility_id": facility["id"],
            "rectified_on": str(date.today()),
        },
    )
    await handled(registry, 3)
    page = (await registry.client.get(f"/v1/public/facilities/{facility['id']}")).json()
    assert page["inspections"][0]["rectified"] is True


async def test_inspections_older_than_three_years_leave_the_public_page(registry: Registry) -> None:
    facility = await registry.approved()
    for days_ago in (30, 3 * 365 + 30):
        await publish(
            registry,
            "cradle.monitoring.inspection.completed",
            {
                "inspection_id": str(uuid.uuid4()),
                "facility_id": facility["id"],
                "district_code": "310104",
                "inspected_on": str(date.today() - timedelta(days=days_ago)),
                "outcome": "pass",
                "items": [],
            },
        )
    await handled(registry, 2)
    page = (await registry.client.get(f"/v1/public/facilities/{facility['id']}")).json()
    assert len(page["inspections"]) == 1 and page["inspections"][0]["outcome"] == "pass"


async def test_a_ban_writes_an_entry_at_every_facility_that_employed_the_person(registry: Registry) -> None:
    first, second = await registry.approved(), await registry.approved()
    data = {
        "ban_id": str(uuid.uuid4()),
        "role": "abuser",
        "decision_ref": "沪教托禁〔2026〕7号",
        "issued_at": "2026-11-20T09:00:00+08:00",
        "practitioner_id": str(uuid.uuid4()),
        "facilities": [
            {"facility_id": first["id"], "district_code": "310104", "employment_id": str(uuid.uuid4())},
            {"facility_id": second["id"], "district_code": "310104", "employment_id": str(uuid.uuid4())},
        ],
    }
    event_id = await publish(registry, "cradle.workforce.ban.issued", data)
    await publish(registry, "cradle.workforce.ban.issued", data, event_id=event_id)
    await handled(registry, 2)
    for facility in (first, second):
        [entry] = await credit(registry, facility["id"])
        assert entry["category"] == "staff_banned" and entry["occurred_on"] == "2026-11-20"
        assert "沪教托禁〔2026〕7号" in entry["detail"]


async def test_confirmed_incidents_and_overdue_rectifications_are_negative_entries(
    registry: Registry,
) -> None:
    facility = await registry.approved()
    await publish(
        registry,
        "cradle.monitoring.incident.confirmed",
        {
            "incident_id": str(uuid.uuid4()),
            "facility_id": facility["id"],
            "district_code": "310104",
            "category": "injury",
            "decision_ref": "徐教托〔2026〕12号",
            "decided_at": "2026-11-21T10:00:00+08:00",
            "abuser_practitioner_ids": [],
            "responsible_manager_ids": [],
        },
    )
    await publish(
        registry,
        "cradle.monitoring.rectification.overdue",
        {
            "inspection_id": str(uuid.uuid4()),
            "facility_id": facility["id"],
            "district_code": "310104",
            "rectify_by": "2026-11-01",
        },
    )
    for deadline in ("report", "finding"):
        await publish(
            registry,
            "cradle.monitoring.deadline.missed",
            {
                "incident_id": str(uuid.uuid4()),
                "facility_id": facility["id"],
                "district_code": "310104",
                "deadline": deadline,
                "due_at": "2026-11-20T12:00:00+08:00",
                "detected_at": "2026-11-20T15:00:00+08:00",
            },
        )
    await handled(registry, 4)
    entries = await credit(registry, facility["id"])
    # The district's overdue findings are not the facility's lapse: only the late report is recorded.
    assert sorted(e["category"] for e in entries) == [
        "incident_confirmed",
        "incident_reported_late",
        "rectification_overdue",
    ]
    assert all(e["polarity"] == "negative" for e in entries)


async def test_an_event_about_an_unknown_facility_writes_nothing(registry: Registry) -> None:
    await publish(
        registry,
        "cradle.monitoring.rectification.overdue",
        {
            "inspection_id": str(uuid.uuid4()),
            "facility_id": str(uuid.uuid4()),
            "district_code": "310104",
            "rectify_by": "2026-11-01",
        },
    )
    await handled(registry, 1)
    async with registry.stack.registry.state.sessionmaker() as session:
        assert (await session.execute(select(func.count()).select_from(CreditEntry))).scalar_one() == 0
