"""The admin client administers clients; it acts for no bureau and no district (separation of
duties). Holding every scope gets it through the gateway, but the registry refuses it each
department's decision: reviews, status changes, credit entries, assessments, demonstration
designation. Each refusal leaves the facility as it was; the right client does the same thing."""

from __future__ import annotations

from datetime import date

from tests.registry.conftest import Registry


async def test_admin_does_not_review_for_a_department(registry: Registry) -> None:
    facility = await registry.submit()
    admin = await registry.stack.admin()
    for department in ("EDU", "FIRE"):
        refused = await registry.client.post(
            f"/v1/facilities/{facility['id']}/reviews",
            json={"department": department, "decision": "approve", "note": ""},
            headers=admin,
        )
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    application = (
        await registry.client.get(f"/v1/facilities/{facility['id']}/application", headers=registry["EDU"])
    ).json()
    assert application["reviews"] == [] and application["facility"]["status"] == "submitted"


async def test_admin_does_not_suspend_close_or_reinstate(registry: Registry) -> None:
    approved = await registry.approved()
    path = f"/v1/facilities/{approved['id']}/status"
    admin = await registry.stack.admin()
    for status in ("suspended", "closed"):
        refused = await registry.client.post(path, json={"status": status, "reason": "x"}, headers=admin)
        assert refused.status_code == 403, refused.text
    suspended = await registry.client.post(
        path, json={"status": "suspended", "reason": "消防检查不合格"}, headers=registry["district"]
    )
    assert suspended.json()["status"] == "suspended"
    reinstate = {"status": "approved", "reason": "整改完成"}
    assert (await registry.client.post(path, json=reinstate, headers=admin)).status_code == 403
    history = (
        await registry.client.get(f"/v1/facilities/{approved['id']}/status-history", headers=registry["EDU"])
    ).json()["items"]
    assert [h["to_status"] for h in history] == ["submitted", "approved", "suspended"]
    assert [e["data"]["reason"] for e in await registry.events("cradle.registry.facility.suspended")] == [
        "消防检查不合格"
    ]
    assert await registry.events("cradle.registry.facility.closed") == []


async def test_only_edu_writes_a_credit_entry_by_hand(registry: Registry) -> None:
    facility = await registry.approved()
    path = f"/v1/facilities/{facility['id']}/credit-record"
    entry = {
        "polarity": "negative",
        "category": "fee_violation",
        "title": "违规收费 Charged fees above the inclusive cap",
        "occurred_on": str(date.today()),
    }
    admin = await registry.stack.admin()
    # Nobody but EDU: not the admin, not a district, not another reviewing bureau.
    for who in (admin, registry["district"], registry["HEALTH"], registry["POLICE"]):
        refused = await registry.client.post(path, json=entry, headers=who)
        assert refused.status_code == 403, refused.text
    record = (await registry.client.get(path, headers=registry["EDU"])).json()
    assert record == {"items": [], "next_cursor": None}
    assert (await registry.client.post(path, json=entry, headers=registry["EDU"])).status_code == 201
    assert [
        e["title"] for e in (await registry.client.get(path, headers=registry["EDU"])).json()["items"]
    ] == [entry["title"]]


async def test_admin_neither_assesses_nor_designates(registry: Registry) -> None:
    facility = await registry.approved()
    admin = await registry.stack.admin()
    assessment = {
        "method": "commissioned",
        "scores": {"safety": 92},
        "grade": "A",
        "assessed_on": str(date.today()),
        "assessor": "上海市托育服务评估中心",
    }
    for method in ("commissioned", "peer", "self"):
        body = {**assessment, "method": method}
        path = f"/v1/facilities/{facility['id']}/assessments"
        refused = await registry.client.post(path, json=body, headers=admin)
        assert refused.status_code == 403, refused.text
    designation = {"designated": True, "reason": "2026 年度市级示范性托育机构"}
    refused = await registry.client.post(
        f"/v1/facilities/{facility['id']}/demonstration", json=designation, headers=admin
    )
    assert refused.status_code == 403, refused.text
    current = (await registry.client.get(f"/v1/facilities/{facility['id']}", headers=registry["EDU"])).json()
    assert current["grade"] is None and current["is_demonstration"] is False
    assert await registry.events("cradle.registry.assessment.recorded") == []
