"""Suspended and closed facilities stay on the public pages with their status and credit record;
the default public search lists operating facilities only."""

from __future__ import annotations

from tests.registry.conftest import Registry


async def change_status(registry: Registry, facility_id: str, status: str) -> None:
    response = await registry.client.post(
        f"/v1/facilities/{facility_id}/status",
        json={"status": status, "reason": "消防检查未通过，停业整改"},
        headers=registry["EDU"],
    )
    assert response.status_code == 200, response.text


async def public_ids(registry: Registry, **params: str) -> list[str]:
    response = await registry.client.get("/v1/public/facilities", params={"limit": "500", **params})
    assert response.status_code == 200, response.text
    return [f["id"] for f in response.json()["items"]]


async def test_a_suspended_or_closed_facility_keeps_its_public_page(registry: Registry) -> None:
    operating = await registry.approved()
    suspended = await registry.approved()
    closed = await registry.approved()
    submitted = await registry.submit()
    await change_status(registry, suspended["id"], "suspended")
    await change_status(registry, closed["id"], "closed")
    entry = {
        "polarity": "negative",
        "category": "penalty",
        "title": "停业整改",
        "occurred_on": "2026-11-20",
    }
    written = await registry.client.post(
        f"/v1/facilities/{suspended['id']}/credit-record", json=entry, headers=registry["EDU"]
    )
    assert written.status_code == 201, written.text

    page = await registry.client.get(f"/v1/public/facilities/{suspended['id']}")
    assert page.status_code == 200
    assert page.json()["status"] == "suspended"
    assert [e["title"] for e in page.json()["credit_record"]] == ["停业整改"]
    record = await registry.client.get(f"/v1/public/facilities/{closed['id']}/credit-record")
    assert record.status_code == 200
    assert (await registry.client.get(f"/v1/public/facilities/{closed['id']}")).json()["status"] == "closed"
    assert (await registry.client.get(f"/v1/public/facilities/{submitted['id']}")).status_code == 404

    assert await public_ids(registry) == [operating["id"]]
    assert await public_ids(registry, status="suspended") == [suspended["id"]]
    assert await public_ids(registry, status="closed") == [closed["id"]]
    # Not a public status: the view is not widened.
    assert await public_ids(registry, status="submitted") == [operating["id"]]
