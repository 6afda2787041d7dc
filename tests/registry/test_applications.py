"""Applications (申办): reviews by the required departments, licences, later status changes."""

from __future__ import annotations

from tests.registry.conftest import REQUIRED, Registry


async def test_every_required_department_approves_and_a_licence_is_issued(registry: Registry) -> None:
    facility = await registry.submit()
    for department in REQUIRED[:-1]:
        response = await registry.review(facility["id"], department)
        assert response.json()["status"] == "submitted"
    application = (
        await registry.client.get(f"/v1/facilities/{facility['id']}/application", headers=registry["EDU"])
    ).json()
    assert application["awaiting"] == ["SAMR"]

    approved = (await registry.review(facility["id"], "SAMR")).json()
    assert approved["status"] == "approved"
    assert approved["license_no"].startswith("沪托310104-")
    assert approved["approved_at"]
    second = await registry.approved()
    assert second["license_no"] != approved["license_no"]

    events = await registry.events("cradle.registry.facility.approved")
    assert [e["data"]["facility_id"] for e in events] == [facility["id"], second["id"]]
    assert events[0]["data"]["license_no"] == approved["license_no"]
    assert len(await registry.events("cradle.registry.facility.reviewed")) == 8


async def test_a_rejection_closes_the_application_with_its_reasons(registry: Registry) -> None:
    facility = await registry.submit()
    await registry.review(facility["id"], "EDU")
    rejected = await registry.review(
        facility["id"], "FIRE", "reject", "疏散通道不足 Not enough escape routes"
    )
    assert rejected.status_code == 200
    body = rejected.json()
    assert body["status"] == "rejected"
    assert body["rejection_reasons"] == ["FIRE: 疏散通道不足 Not enough escape routes"]
    assert (await registry.events("cradle.registry.facility.rejected"))[0]["data"]["reasons"] == body[
        "rejection_reasons"
    ]


async def test_a_second_review_by_a_department_is_kept_beside_its_first(registry: Registry) -> None:
    facility = await registry.submit()
    first = await registry.review(facility["id"], "HEALTH", "approve", "ok")
    second = await registry.review(facility["id"], "HEALTH", "approve", "复核通过")
    assert first.status_code == second.status_code == 200
    application = (
        await registry.client.get(f"/v1/facilities/{facility['id']}/application", headers=registry["EDU"])
    ).json()
    health = [r for r in application["reviews"] if r["department"] == "HEALTH"]
    assert [r["note"] for r in health] == ["ok", "复核通过"]
    assert "HEALTH" not in application["awaiting"]


async def test_reviewing_a_decided_application_is_a_conflict(registry: Registry) -> None:
    approved = await registry.approved()
    response = await registry.review(approved["id"], "EDU", "reject", "too late")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_department_reviews_only_for_itself(registry: Registry) -> None:
    facility = await registry.submit()
    response = await registry.client.post(
        f"/v1/facilities/{facility['id']}/reviews",
        json={"department": "FIRE", "decision": "approve"},
        headers=registry["EDU"],
    )
    assert response.status_code == 403
    # An operator has no registry:review at all.
    response = await registry.client.post(
        f"/v1/facilities/{facility['id']}/reviews",
        json={"department": "EDU", "decision": "approve"},
        headers=registry["operator"],
    )
    assert response.status_code == 403


async def test_a_rejection_must_say_why_and_bad_reviews_name_their_fields(registry: Registry) -> None:
    facility = await registry.submit()
    response = await registry.client.post(
        f"/v1/facilities/{facility['id']}/reviews",
        json={"department": "MOON", "decision": "maybe"},
        headers=registry["EDU"],
    )
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"department", "decision"}
    response = await registry.review(facility["id"], "EDU", "reject", "")
    assert response.status_code == 422


async def test_suspend_reinstate_and_close_are_history_with_reasons(registry: Registry) -> None:
    approved = await registry.approved()
    path = f"/v1/facilities/{approved['id']}/status"

    no_reason = await registry.client.post(path, json={"status": "suspended"}, headers=registry["EDU"])
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    # Another district may not act on this facility (and does not see it).
    assert (
        await registry.client.post(
            path, json={"status": "suspended", "reason": "x"}, headers=registry["other_district"]
        )
    ).status_code == 404

    suspended = await registry.client.post(
        path, json={"status": "suspended", "reason": "消防检查不合格"}, headers=registry["district"]
    )
    assert suspended.json()["status"] == "suspended"
    reinstated = await registry.client.post(
        path, json={"status": "approved", "reason": "整改完成"}, headers=registry["EDU"]
    )
    assert reinstated.json()["status"] == "approved"
    closed = await registry.client.post(
        path, json={"status": "closed", "reason": "举办者申请注销"}, headers=registry["EDU"]
    )
    assert closed.json()["status"] == "closed"
    again = await registry.client.post(
        path, json={"status": "approved", "reason": "?"}, headers=registry["EDU"]
    )
    assert again.status_code == 409

    history = (
        await registry.client.get(f"/v1/facilities/{approved['id']}/status-history", headers=registry["EDU"])
    ).json()["items"]
    assert [h["to_status"] for h in history] == ["submitted", "approved", "suspended", "approved", "closed"]
    # A page at a time, in the same order, nothing skipped or repeated.
    paged, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await registry.client.get(
            f"/v1/facilities/{approved['id']}/status-history", params=params, headers=registry["EDU"]
        )
        paged += [h["to_status"] for h in page.json()["items"]]
        if (cursor := page.json()["next_cursor"]) is None:
            break
    assert paged == [h["to_status"] for h in history]
    wrong = await registry.client.get(
        f"/v1/facilities/{approved['id']}/status-history",
        params={"cursor": "bm90IGEgY3Vyc29y"},
        headers=registry["EDU"],
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "cursor"
    assert history[2]["reason"] == "消防检查不合格"
    for event_type in ("suspended", "reinstated", "closed"):
        [event] = await registry.events(f"cradle.registry.facility.{event_type}")
        assert event["data"]["reason"]


async def test_an_operator_cannot_change_status(registry: Registry) -> None:
    approved = await registry.approved()
    response = await registry.client.post(
        f"/v1/facilities/{approved['id']}/status",
        json={"status": "closed", "reason": "x"},
        headers=registry["operator"],
    )
    assert response.status_code == 403
