"""Guidance through the gateway: who may read the plan's figures (straight and through the gateway),
and a parent app's whole path, from registering to booking a session."""

from __future__ import annotations

import pytest

from tests.guidance.conftest import Guide, from_now, months_ago

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_figures_are_for_readers_and_the_indicator_clients_through_the_gateway(guide: Guide) -> None:
    assert (await guide.direct.get("/v1/guidance/figures", headers=guide.parent())).status_code == 403
    assert (
        await guide.direct.get("/v1/guidance/figures", params={"year": 1999}, headers=guide.bureau())
    ).status_code == 422
    # The gateway's own /v1/indicators reads them with `indicators:read`; readers through the gateway.
    direct = await guide.direct.get("/v1/guidance/figures", headers=guide.bureau(scopes=["indicators:read"]))
    assert direct.status_code == 200 and direct.json()["city"]["towns"] == 216
    reader = await guide.headers_for(name="妇儿工委", kind="bureau", bureau="WCWC", scopes=["guidance:read"])
    through = await guide.client.get("/v1/guidance/figures", headers=reader)
    assert through.status_code == 200 and through.json()["city"]["towns"] == 216, through.text
    no_scope = await guide.headers_for(name="无关", kind="bureau", bureau="EDU", scopes=["registry:read"])
    assert (await guide.client.get("/v1/guidance/figures", headers=no_scope)).status_code == 403


async def test_a_parent_app_works_end_to_end_through_the_gateway(guide: Guide) -> None:
    registered = await guide.client.post(
        "/v1/auth/parents/register", json={"phone": "13900001111", "password": "育儿加油站2026"}
    )
    assert registered.status_code == 201, registered.text
    parent = {"Authorization": f"Bearer {registered.json()['access_token']}"}
    created = await guide.client.post(
        "/v1/families",
        json={
            "town_code": "310104003",
            "guardians": [{"relation": "mother", "name": "林芳", "phone": "13900001111"}],
            "children": [{"birth_date": months_ago(10).isoformat()}],
            "in_need": True,
        },
        headers=parent,
    )
    assert created.status_code == 201, created.text
    family = created.json()
    assert family["guardians"][0]["name"] == "林芳" and family["guardians"][0]["phone"] == "139****1111"
    assert (await guide.client.get(f"/v1/families/{family['id']}", headers=parent)).status_code == 200
    session = await guide.session(starts_at=from_now(days=5))
    booked = await guide.client.post(f"/v1/sessions/{session['id']}/bookings", json={}, headers=parent)
    assert booked.status_code == 201 and booked.json()["family_id"] == family["id"]
    assert (await guide.client.get(f"/v1/families/{family['id']}/feed", headers=parent)).status_code == 200
    stranger = await guide.family()
    assert (await guide.client.get(f"/v1/families/{stranger['id']}", headers=parent)).status_code == 404
