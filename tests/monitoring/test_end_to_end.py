"""Through the gateway only, as the bureaus and the facility's systems would call it: a camera's
`abuse_suspected` event becomes a critical alert for the district, the district escalates it to an
incident, EDU confirms abuse naming a carer and the director, and the workforce bans both — their
employments end, the facility's district sees the bans, and the risk score rises with its reasons."""

from __future__ import annotations

from datetime import date
from typing import Any

from tests.monitoring.conftest import MonitoringStack, cctv_event
from tests.support import eventually


async def test_from_a_camera_event_to_lifetime_bans(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    facility_id = facility["id"]
    carer, _ = await mon.employ([facility_id], role="infant_carer", name="张三")
    director, _ = await mon.employ([facility_id], role="director", name="李四")
    camera = await mon.camera(facility_id, location="sleeping_room")

    sent = await mon.send(
        [cctv_event(camera, type="abuse_suspected", payload={"model": "行为分析 v3", "score": 0.94})]
    )
    assert sent.json()["alerts_raised"] == 1

    district = await mon.headers("district")
    [alert] = (await mon.client.get("/v1/alerts?severity=critical&status=open", headers=district)).json()[
        "items"
    ]
    assert (alert["facility_id"], alert["type"]) == (facility_id, "abuse_suspected")
    raised = await mon.events("cradle.monitoring.alert.raised")
    assert raised[0]["data"]["district_code"] == "310104"

    escalated = await mon.client.post(
        f"/v1/alerts/{alert['id']}/escalate",
        json={
            "category": "abuse",
            "severity": "critical",
            "description": "午睡室视频显示保育员推搡幼儿",
            "practitioner_ids": [carer],
        },
        headers=district,
    )
    assert escalated.status_code == 201, escalated.text
    incident = escalated.json()
    assert (await mon.client.get(f"/v1/alerts/{alert['id']}", headers=district)).json()[
        "status"
    ] == "escalated"

    edu = await mon.headers("EDU")
    finding = await mon.client.post(
        f"/v1/incidents/{incident['id']}/findings",
        json={
            "outcome": "confirmed",
            "category": "abuse",
            "abuser_practitioner_ids": [carer],
            "responsible_manager_ids": [director],
            "decision_ref": "沪教委托〔2026〕7号",
        },
        headers=edu,
    )
    assert finding.status_code == 200, finding.text
    assert finding.json()["status"] == "confirmed"

    # The workforce bans both and ends their employment; monitoring hears of it.
    operator = await mon.headers("operator")

    async def both_ended() -> list[dict[str, Any]] | None:
        ended = await mon.client.get(
            "/v1/employments", params={"facility_id": facility_id, "status": "ended"}, headers=operator
        )
        items = ended.json()["items"]
        return items if len(items) == 2 else None

    ended = await eventually(both_ended)
    assert {(e["practitioner_id"], e["end_reason"]) for e in ended} == {(carer, "ban"), (director, "ban")}

    async def ban_alerts() -> list[dict[str, Any]] | None:
        found = (await mon.client.get("/v1/alerts?type=ban_issued", headers=district)).json()["items"]
        return found if len(found) == 2 else None

    await eventually(ban_alerts)
    risk = (await mon.client.get(f"/v1/facilities/{facility_id}/risk", headers=district)).json()
    codes = {reason["code"] for reason in risk["reasons"]}
    assert {"confirmed_abuse", "bans"} <= codes, risk
    assert risk["score"] > 0

    # Rehiring the carer anywhere is refused.
    again = await mon.client.post(
        "/v1/employments",
        json={
            "practitioner_id": carer,
            "facility_id": facility_id,
            "role": "infant_carer",
            "start_date": date.today().isoformat(),
        },
        headers=operator,
    )
    assert again.status_code == 409
