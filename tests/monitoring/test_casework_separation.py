"""Separation of duties in the casework: the admin client administers clients and acts for no
district and no bureau. Its oversight read gets it through the gateway, but it neither reports, escalates,
finds, confirms nor rejects, draws plans or records inspections, and it does not read the
districts' unannounced plans. Each refusal leaves the casework as it was."""

from __future__ import annotations

from typing import Any

from services.monitoring.models import Alert
from shared.identity import ClientKind, Identity
from tests.monitoring.casework_support import EDU, XUHUI, direct, incident_body, owned_facility, this_month
from tests.monitoring.conftest import MonitoringStack, cctv_event
from tests.monitoring.test_casework_incidents import alerts_where, employed_in_monitoring, report

# The admin client as the gateway signs it (for the paths the gateway does not route).
ADMIN = Identity(client_id="admin", kind=ClientKind.admin, scopes=["admin"])


async def test_admin_neither_finds_nor_confirms_nor_rejects(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    carer, _ = await mon.employ([facility["id"]], name="赵六")
    await employed_in_monitoring(mon, 1)
    admin, district, edu = await mon.stack.admin(), await mon.headers("district"), await mon.headers("EDU")
    abuse = (await report(mon, incident_body(facility["id"], category="abuse"))).json()
    path = f"/v1/incidents/{abuse['id']}/findings"
    finding = {
        "outcome": "confirmed",
        "category": "abuse",
        "abuser_practitioner_ids": [carer],
        "decision_ref": "徐教〔2026〕30号",
    }
    for body in (finding, {"outcome": "unfounded", "category": "abuse", "decision_ref": "x"}):
        refused = await mon.client.post(path, json=body, headers=admin)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    untouched = (await mon.client.get(f"/v1/incidents/{abuse['id']}", headers=district)).json()
    assert untouched["status"] == "reported" and untouched["findings"] == []

    assert (await mon.client.post(path, json=finding, headers=district)).status_code == 200
    assert (await mon.client.post(f"{path}/confirm", json={}, headers=admin)).status_code == 403
    assert (
        await mon.client.post(f"{path}/reject", json={"reason": "证据不足"}, headers=admin)
    ).status_code == 403
    waiting = (await mon.client.get(f"/v1/incidents/{abuse['id']}", headers=district)).json()
    assert waiting["status"] == "proposed"
    assert [f["status"] for f in waiting["findings"]] == ["proposed"]
    confirmed = [
        e
        for e in await mon.events("cradle.monitoring.incident.confirmed")
        if e["data"]["incident_id"] == abuse["id"]
    ]
    assert confirmed == []
    # EDU, the lead bureau, is who confirms.
    assert (await mon.client.post(f"{path}/confirm", json={}, headers=edu)).status_code == 200


async def test_admin_neither_reports_nor_escalates(mon: MonitoringStack) -> None:
    facility_id = await owned_facility(mon)
    admin = await mon.stack.admin()
    reported = await report(mon, incident_body(facility_id), who="district")
    assert reported.status_code == 201, reported.text
    refused = await mon.client.post("/v1/incidents", json=incident_body(facility_id), headers=admin)
    assert refused.status_code == 403, refused.text

    camera = await mon.camera(facility_id)
    assert (await mon.send([cctv_event(camera, "abuse_suspected")])).status_code == 200
    [alert] = await alerts_where(mon, facility_id=facility_id, type="abuse_suspected")
    body = {"category": "abuse", "severity": "critical", "description": "视频显示疑似推搡幼儿"}
    refused = await mon.client.post(f"/v1/alerts/{alert.id}/escalate", json=body, headers=admin)
    assert refused.status_code == 403, refused.text
    [still] = await alerts_where(mon, id=alert.id)
    assert isinstance(still, Alert) and still.status == "open" and still.incident_id is None


async def test_admin_neither_acknowledges_nor_resolves_an_alert_but_reads_it(mon: MonitoringStack) -> None:
    facility_id = await owned_facility(mon)
    admin, district = await mon.stack.admin(), await mon.headers("district")
    camera = await mon.camera(facility_id)
    assert (await mon.send([cctv_event(camera, "abuse_suspected")])).status_code == 200
    [alert] = await alerts_where(mon, facility_id=facility_id, type="abuse_suspected")
    for action in ("ack", "resolve"):
        body = {"note": "已处理"}
        refused = await mon.client.post(f"/v1/alerts/{alert.id}/{action}", json=body, headers=admin)
        assert refused.status_code == 403, refused.text
    [still] = await alerts_where(mon, id=alert.id)
    assert still.status == "open" and still.version == alert.version
    read = await mon.client.get(f"/v1/alerts/{alert.id}", headers=admin)
    assert read.status_code == 200 and read.json()["status"] == "open", read.text
    acknowledged = await mon.client.post(f"/v1/alerts/{alert.id}/ack", json={}, headers=district)
    assert acknowledged.status_code == 200 and acknowledged.json()["status"] == "acknowledged", (
        acknowledged.text
    )


async def test_admin_neither_plans_nor_inspects_nor_reads_the_plans(
    mon: MonitoringStack, keys: dict[str, Any]
) -> None:
    facility_id = await owned_facility(mon)
    admin, district = await mon.stack.admin(), await mon.headers("district")
    async with direct(mon, keys) as api:
        refused = await api.post("/v1/inspectors", ADMIN, json={"district_code": XUHUI, "name": "检查员"})
        assert refused.status_code == 403, refused.text
        inspectors = await api.inspectors(2)
        # The districts' and the bureaus' lists, not the admin's (a 双随机 inspection is unannounced).
        assert (await api.get("/v1/inspectors", ADMIN)).status_code == 403
        assert (await api.get("/v1/inspectors", EDU)).status_code == 200
        assert (await api.get("/v1/monitoring/figures?year=2026", ADMIN)).status_code == 403

    plan = {"district_code": XUHUI, "month": this_month(), "sample_size": 1, "seed": "admin-refused"}
    assert (await mon.client.post("/v1/inspection-plans", json=plan, headers=admin)).status_code == 403
    drawn = await mon.client.post("/v1/inspection-plans", json=plan, headers=district)
    assert drawn.status_code == 201, drawn.text
    plan_path = f"/v1/inspection-plans/{drawn.json()['id']}"
    assert (await mon.client.get(plan_path, headers=admin)).status_code == 404
    assert (await mon.client.get("/v1/inspection-plans", headers=admin)).status_code == 403

    made = await mon.client.post(
        "/v1/inspections", json={"facility_id": facility_id, "inspector_ids": inspectors}, headers=admin
    )
    assert made.status_code == 403, made.text
    made = await mon.client.post(
        "/v1/inspections", json={"facility_id": facility_id, "inspector_ids": inspectors}, headers=district
    )
    assert made.status_code == 201, made.text
    inspection = made.json()
    listed = (await mon.client.get("/v1/inspections", headers=admin)).json()["items"]
    assert inspection["id"] not in [i["id"] for i in listed]  # planned: not the admin's to see
    result = {"items": [{"code": "food_safety", "passed": True}], "outcome": "pass"}
    refused = await mon.client.post(f"/v1/inspections/{inspection['id']}/result", json=result, headers=admin)
    assert refused.status_code == 403, refused.text  # it holds no `monitoring:write`
    unseen = await mon.client.get(f"/v1/inspections/{inspection['id']}", headers=admin)
    assert unseen.status_code == 404, unseen.text  # nor does it see a planned one
    after = (await mon.client.get(f"/v1/inspections/{inspection['id']}", headers=district)).json()
    assert after["status"] == "planned"
