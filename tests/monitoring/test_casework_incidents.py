"""Incidents: reports and their deadline, who sees which, findings (once), escalated alerts, the
overdue-finding job, and parents' reports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from services.monitoring.jobs import flag_missed_deadlines
from services.monitoring.models import Alert, EmploymentRecord
from tests.monitoring.casework_support import direct, incident_body, owned_facility, parent
from tests.monitoring.conftest import MonitoringStack, cctv_event
from tests.support import eventually


async def report(mon: MonitoringStack, body: dict[str, Any], who: str = "operator", **kw: Any) -> Any:
    return await mon.client.post("/v1/incidents", json=body, headers=await mon.headers(who), **kw)


async def alerts_where(mon: MonitoringStack, **equals: Any) -> list[Alert]:
    async with mon.monitoring.state.sessionmaker() as session:
        query = select(Alert).where(*(getattr(Alert, k) == v for k, v in equals.items()))
        return list((await session.execute(query)).scalars())


async def test_a_late_report_raises_the_deadline_alert(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    response = await report(mon, incident_body(facility["id"]))
    assert response.status_code == 201, response.text
    incident = response.json()
    assert incident["status"] == "reported" and incident["reported_by_kind"] == "facility"
    assert incident["reported_late"] is False and response.headers["ETag"] == '"1"'
    assert [h["to_status"] for h in incident["history"]] == ["reported"]

    three_hours_ago = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
    # `other` has 24 h, abuse 2 h.
    other = await report(mon, incident_body(facility["id"], category="other", occurred_at=three_hours_ago))
    assert other.json()["reported_late"] is False
    late = await report(mon, incident_body(facility["id"], category="abuse", occurred_at=three_hours_ago))
    assert late.status_code == 201 and late.json()["reported_late"] is True
    late_id = late.json()["id"]
    [alert] = await alerts_where(mon, source="deadline", facility_id=facility["id"])
    assert alert.type == "incident_reported_late" and alert.details["incident_id"] == late_id
    missed = await mon.events("cradle.monitoring.deadline.missed")
    assert [(e["data"]["incident_id"], e["data"]["deadline"]) for e in missed] == [(late_id, "report")]
    reported = await mon.events("cradle.monitoring.incident.reported")
    assert len(reported) == 3

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    bad = await report(mon, incident_body(facility["id"], occurred_at=future))
    assert bad.status_code == 422 and [e["field"] for e in bad.json()["errors"]] == ["occurred_at"]

    # The same Idempotency-Key and body: the first answer, nothing twice.
    body = incident_body(facility["id"])
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    first = await mon.client.post(
        "/v1/incidents", json=body, headers={**await mon.headers("operator"), **key}
    )
    again = await mon.client.post(
        "/v1/incidents", json=body, headers={**await mon.headers("operator"), **key}
    )
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"


async def bad_bodies_name_every_wrong_field(mon: MonitoringStack, facility: dict[str, Any]) -> None:
    bad = await report(
        mon,
        {
            "facility_id": "x",
            "category": "theft",
            "severity": "urgent",
            "occurred_at": "yesterday",
            "description": " ",
            "practitioner_ids": ["nope"],
            "reported_by_kind": "martian",
            "extra": 1,
        },
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {
        "facility_id",
        "category",
        "severity",
        "occurred_at",
        "description",
        "practitioner_ids.0",
        "reported_by_kind",
        "extra",
    }
    naive = await report(mon, incident_body(facility["id"], occurred_at="2026-01-01T10:00:00"))
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "occurred_at"
    # An operator reports as its facility, nothing else.
    as_parent = await report(mon, incident_body(facility["id"], reported_by_kind="parent"))
    assert as_parent.status_code == 422 and as_parent.json()["errors"][0]["field"] == "reported_by_kind"
    malformed = await mon.client.post(
        "/v1/incidents",
        content=b"{nope",
        headers={**await mon.headers("operator"), "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400

    incident = (await report(mon, incident_body(facility["id"]))).json()
    finding = await mon.client.post(
        f"/v1/incidents/{incident['id']}/findings",
        json={"outcome": "maybe", "category": "x", "decision_ref": "", "abuser_practitioner_ids": "a"},
        headers=await mon.headers("district"),
    )
    assert finding.status_code == 422
    assert {e["field"] for e in finding.json()["errors"]} == {
        "outcome",
        "category",
        "decision_ref",
        "abuser_practitioner_ids",
    }
    unknown = await mon.client.get("/v1/incidents/nope", headers=await mon.headers("district"))
    assert unknown.status_code == 404


async def a_district_sees_only_its_own_districts_incidents(
    mon: MonitoringStack, facility: dict[str, Any]
) -> None:
    incident = (await report(mon, incident_body(facility["id"]))).json()
    path = f"/v1/incidents/{incident['id']}"
    assert (await mon.client.get(path, headers=await mon.headers("district"))).status_code == 200
    for stranger in ("other_district", "other_operator"):
        headers = await mon.headers(stranger)
        assert (await mon.client.get(path, headers=headers)).status_code == 404
        listed = await mon.client.get("/v1/incidents", headers=headers)
        assert listed.status_code == 200 and listed.json()["items"] == []
        finding = await mon.client.post(
            f"{path}/findings",
            json={"outcome": "unfounded", "category": "injury", "decision_ref": "徐教〔2026〕1号"},
            headers=headers,
        )
        assert finding.status_code == 404
    mine = await mon.client.get(
        "/v1/incidents",
        params={"district_code": "310104", "status": "reported"},
        headers=await mon.headers("district"),
    )
    assert incident["id"] in [i["id"] for i in mine.json()["items"]]


async def employed_in_monitoring(mon: MonitoringStack, count: int) -> None:
    """Wait until monitoring's projection holds `count` employments (from the workforce's events)."""

    async def arrived() -> bool:
        return await mon.count(select(EmploymentRecord).subquery()) >= count

    await eventually(arrived)


async def test_a_districts_abuse_finding_is_proposed_and_only_edus_confirmation_bans(
    mon: MonitoringStack,
) -> None:
    facility = await mon.approved_facility()
    abuser, abuser_id_number = await mon.employ([facility["id"]], name="张三")
    manager, manager_id_number = await mon.employ([facility["id"]], name="李四")
    await employed_in_monitoring(mon, 2)
    abuse = (await report(mon, incident_body(facility["id"], category="abuse"))).json()
    path = f"/v1/incidents/{abuse['id']}/findings"
    district, edu = await mon.headers("district"), await mon.headers("EDU")
    finding = {
        "outcome": "confirmed",
        "category": "abuse",
        "abuser_practitioner_ids": [abuser],
        "responsible_manager_ids": [manager],
        "decision_ref": "徐教〔2026〕12号",
    }
    nobody = await mon.client.post(path, json=finding | {"abuser_practitioner_ids": []}, headers=district)
    assert nobody.status_code == 422
    assert [e["field"] for e in nobody.json()["errors"]] == ["abuser_practitioner_ids"]
    stranger = str(uuid.uuid4())
    named_stranger = await mon.client.post(
        path, json=finding | {"responsible_manager_ids": [manager, stranger]}, headers=district
    )
    assert named_stranger.status_code == 422, named_stranger.text
    assert [e["field"] for e in named_stranger.json()["errors"]] == ["responsible_manager_ids.1"]
    assert stranger in named_stranger.json()["detail"] and manager not in named_stranger.json()["detail"]
    operator = await mon.client.post(path, json=finding, headers=await mon.headers("operator"))
    assert operator.status_code == 403

    # The district proposes: stored, published as proposed, nobody banned.
    proposed = await mon.client.post(path, json=finding, headers=district)
    assert proposed.status_code == 200, proposed.text
    body = proposed.json()
    assert body["status"] == "proposed" and body["outcome"] is None
    assert [(f["status"], f["abuser_practitioner_ids"]) for f in body["findings"]] == [("proposed", [abuser])]
    assert await mon.events("cradle.monitoring.incident.confirmed") == []
    [event] = await mon.events("cradle.monitoring.finding.proposed")
    assert event["data"]["incident_id"] == abuse["id"] and "abuser_practitioner_ids" not in event["data"]
    assert (await mon.client.post(path, json=finding, headers=district)).status_code == 409
    # Only EDU confirms: not the district, not another bureau.
    for who in (district, await mon.headers("HEALTH")):
        assert (await mon.client.post(f"{path}/confirm", json={}, headers=who)).status_code == 403

    confirmed = await mon.client.post(f"{path}/confirm", json={"note": "复核属实"}, headers=edu)
    assert confirmed.status_code == 200, confirmed.text
    assert (
        confirmed.json()["status"] == "confirmed" and confirmed.json()["findings"][0]["status"] == "confirmed"
    )
    assert [h["to_status"] for h in confirmed.json()["history"]] == ["reported", "proposed", "confirmed"]
    [event] = await mon.events("cradle.monitoring.incident.confirmed")
    assert event["data"]["abuser_practitioner_ids"] == [abuser]
    assert event["data"]["responsible_manager_ids"] == [manager]
    assert event["data"]["decision_ref"] == "徐教〔2026〕12号" and event["data"]["occurred_at"]
    again = await mon.client.post(f"{path}/confirm", json={}, headers=edu)
    assert again.status_code == 409

    ban_reader = await mon.headers_for(
        name="市人社局", kind="bureau", bureau="HRSS", scopes=["workforce:read"]
    )

    async def banned(id_number: str) -> bool:
        check = await mon.client.post(
            "/v1/ban-checks", json={"id_number": id_number}, headers={**ban_reader, "X-Purpose": "test"}
        )
        return check.status_code == 200 and check.json()["banned"]

    await eventually(lambda: banned(abuser_id_number))
    await eventually(lambda: banned(manager_id_number))


async def test_a_rejected_proposal_bans_nobody_and_leaves_the_incident_open(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    carer, carer_id_number = await mon.employ([facility["id"]], name="王五")
    await employed_in_monitoring(mon, 1)
    abuse = (await report(mon, incident_body(facility["id"], category="abuse"))).json()
    path = f"/v1/incidents/{abuse['id']}/findings"
    district, edu = await mon.headers("district"), await mon.headers("EDU")
    finding = {
        "outcome": "confirmed",
        "category": "abuse",
        "abuser_practitioner_ids": [carer],
        "decision_ref": "徐教〔2026〕20号",
    }
    assert (await mon.client.post(path, json=finding, headers=district)).status_code == 200
    no_reason = await mon.client.post(f"{path}/reject", json={}, headers=edu)
    assert no_reason.status_code == 422
    rejected = await mon.client.post(f"{path}/reject", json={"reason": "证据不足"}, headers=edu)
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "reported"
    assert [f["status"] for f in rejected.json()["findings"]] == ["rejected"]
    [event] = await mon.events("cradle.monitoring.finding.rejected")
    assert event["data"]["reason"] == "证据不足"
    assert await mon.events("cradle.monitoring.incident.confirmed") == []

    # Open again: a new finding (here unfounded, final at once), both kept.
    unfounded = await mon.client.post(
        path,
        json={"outcome": "unfounded", "category": "abuse", "decision_ref": "徐教〔2026〕21号"},
        headers=district,
    )
    assert unfounded.status_code == 200 and unfounded.json()["status"] == "unfounded"
    assert [f["status"] for f in unfounded.json()["findings"]] == ["rejected", "final"]
    check = await mon.client.post(
        "/v1/ban-checks",
        json={"id_number": carer_id_number},
        headers=await mon.headers_for(
            name="市人社局", kind="bureau", bureau="HRSS", scopes=["workforce:read"]
        ),
    )
    assert check.status_code == 200 and check.json()["banned"] is False


async def an_alert_escalates_to_an_incident_once(mon: MonitoringStack, facility: dict[str, Any]) -> None:
    camera = await mon.camera(facility["id"])
    assert (await mon.send([cctv_event(camera, "abuse_suspected")])).status_code == 200
    [alert] = await alerts_where(mon, facility_id=facility["id"], type="abuse_suspected")
    district = await mon.headers("district")
    body = {
        "category": "abuse",
        "severity": "critical",
        "description": "视频显示疑似推搡幼儿",
        "practitioner_ids": [],
    }
    other = await mon.client.post(
        f"/v1/alerts/{alert.id}/escalate", json=body, headers=await mon.headers("other_district")
    )
    assert other.status_code == 404
    bad = await mon.client.post(f"/v1/alerts/{alert.id}/escalate", json={"category": "x"}, headers=district)
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"category", "severity", "description"}

    escalated = await mon.client.post(f"/v1/alerts/{alert.id}/escalate", json=body, headers=district)
    assert escalated.status_code == 201, escalated.text
    incident = escalated.json()
    assert incident["reported_by_kind"] == "alert" and incident["alert_id"] == alert.id
    assert incident["reported_late"] is False
    seen = (await mon.client.get(f"/v1/alerts/{alert.id}", headers=district)).json()
    assert seen["status"] == "escalated" and seen["incident_id"] == incident["id"]
    again = await mon.client.post(f"/v1/alerts/{alert.id}/escalate", json=body, headers=district)
    assert again.status_code == 409

    assert (await mon.send([cctv_event(camera, "smoke_fire")])).status_code == 200
    [fire] = [a for a in await alerts_where(mon, facility_id=facility["id"]) if a.type == "smoke_fire"]
    resolved = await mon.client.post(f"/v1/alerts/{fire.id}/resolve", json={"note": "误报"}, headers=district)
    assert resolved.status_code == 200
    late = await mon.client.post(
        f"/v1/alerts/{fire.id}/escalate", json=body | {"category": "fire"}, headers=district
    )
    assert late.status_code == 409


async def an_overdue_finding_raises_once_even_if_run_twice(
    mon: MonitoringStack, facility: dict[str, Any]
) -> None:
    incident = (await report(mon, incident_body(facility["id"]))).json()
    decided = (await report(mon, incident_body(facility["id"]))).json()
    await mon.client.post(
        f"/v1/incidents/{decided['id']}/findings",
        json={"outcome": "unfounded", "category": "injury", "decision_ref": "x"},
        headers=await mon.headers("district"),
    )
    app = mon.monitoring
    maker, settings = app.state.sessionmaker, app.state.settings
    soon = datetime.now(UTC) + timedelta(hours=1)
    assert await flag_missed_deadlines(maker=maker, settings=settings, now=soon) == {
        "findings_overdue": 0,
        "rectifications_overdue": 0,
        "complaints_escalated": 0,
    }
    later = datetime.now(UTC) + timedelta(hours=settings.finding_deadline_hours + 1)
    assert (await flag_missed_deadlines(maker=maker, settings=settings, now=later))["findings_overdue"] == 1
    assert (await flag_missed_deadlines(maker=maker, settings=settings, now=later + timedelta(minutes=1)))[
        "findings_overdue"
    ] == 0

    [alert] = await alerts_where(mon, source="deadline", type="finding_overdue")
    assert alert.details["incident_id"] == incident["id"] and alert.status == "open"
    missed = await mon.events("cradle.monitoring.deadline.missed")
    assert [(e["data"]["incident_id"], e["data"]["deadline"]) for e in missed] == [
        (incident["id"], "finding")
    ]
    detail = (
        await mon.client.get(f"/v1/incidents/{incident['id']}", headers=await mon.headers("district"))
    ).json()
    assert detail["finding_overdue_at"] is not None and len(detail["history"]) == 2

    # The late finding is still recorded, and it answers the alert.
    done = await mon.client.post(
        f"/v1/incidents/{incident['id']}/findings",
        json={"outcome": "confirmed", "category": "injury", "decision_ref": "徐教〔2026〕14号"},
        headers=await mon.headers("district"),
    )
    assert done.status_code == 200
    [alert] = await alerts_where(mon, source="deadline", type="finding_overdue")
    assert alert.status == "resolved"


async def parents_report_and_read_back_only_their_own(
    mon: MonitoringStack, keys: dict[str, Any], facility: dict[str, Any]
) -> None:
    async with direct(mon, keys) as api:
        mum, dad = parent("mum"), parent("dad")
        body = incident_body(facility["id"], practitioner_ids=[], category="food_safety", severity="medium")
        made = await api.post("/v1/incidents", mum, json=body)
        assert made.status_code == 201, made.text
        incident = made.json()
        assert incident["reported_by_kind"] == "parent" and incident["reported_late"] is False
        assert (await api.get(f"/v1/incidents/{incident['id']}", mum)).status_code == 200
        assert (await api.get(f"/v1/incidents/{incident['id']}", dad)).status_code == 404
        assert [i["id"] for i in (await api.get("/v1/incidents", mum)).json()["items"]] == [incident["id"]]
        assert (await api.get("/v1/incidents", dad)).json()["items"] == []
        as_facility = await api.post("/v1/incidents", mum, json=body | {"reported_by_kind": "facility"})
        assert as_facility.status_code == 422
        nowhere = await api.post("/v1/incidents", mum, json=body | {"facility_id": str(uuid.uuid4())})
        assert nowhere.status_code == 404
        # A parent cannot record a finding (no monitoring:write).
        finding = {"outcome": "unfounded", "category": "food_safety", "decision_ref": "x"}
        assert (
            await api.post(f"/v1/incidents/{incident['id']}/findings", mum, json=finding)
        ).status_code == 403
    # The district sees the parent's report.
    seen = await mon.client.get(f"/v1/incidents/{incident['id']}", headers=await mon.headers("district"))
    assert seen.status_code == 200


async def test_bad_bodies_and_who_sees_which_incident(mon: MonitoringStack, keys: dict[str, Any]) -> None:
    facility = {"id": await owned_facility(mon)}
    await bad_bodies_name_every_wrong_field(mon, facility)
    await a_district_sees_only_its_own_districts_incidents(mon, facility)
    await parents_report_and_read_back_only_their_own(mon, keys, facility)


async def test_overdue_findings_and_escalated_alerts(mon: MonitoringStack) -> None:
    facility = {"id": await owned_facility(mon)}
    await an_overdue_finding_raises_once_even_if_run_twice(mon, facility)
    await an_alert_escalates_to_an_incident_once(mon, facility)
