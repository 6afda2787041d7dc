"""Families: registration by stations and from the app, the parent link (never the token's own
claim), who sees which family, phones encrypted and masked, edits with If-Match, bad input."""

from __future__ import annotations

import json
from datetime import date, timedelta

import jwt
import pytest
from sqlalchemy import select

from services.guidance.models import Family, Guardian, PiiAccess
from shared.identity import IDENTITY_HEADER, ClientKind, Identity
from tests.guidance.conftest import HUANGPU, HUANGPU_TOWN, XUHUI, Guide, family_body, months_ago, phone_number

pytestmark = pytest.mark.asyncio(loop_scope="module")


def guide_client_id(headers: dict[str, str]) -> str:
    """The caller a signed identity header speaks for."""
    return str(jwt.decode(headers[IDENTITY_HEADER], options={"verify_signature": False})["sub"])


async def test_a_station_registers_a_family_with_phones_encrypted_and_masked(guide: Guide) -> None:
    phone = phone_number()
    family = await guide.family(
        guardians=[
            {"relation": "mother", "name": "陈静", "phone": phone},
            {"relation": "grandfather", "name": "陈建国"},
        ],
        newborn=True,
    )
    assert family["district_code"] == XUHUI and family["registered_via"] == "station"
    assert family["grandparent_carers"] is True  # a grandparent among the guardians, unless told otherwise
    assert family["guardians"][0]["phone"] == phone[:3] + "****" + phone[-4:] and family["pii"] == "masked"
    assert family["guardians"][0]["name"] == "陈静"  # Chinese text round-trips unchanged
    assert family["children"][0]["age_months"] == 8
    assert len(family["link_code"]) == 11 and family["link_code_expires_at"]

    async with guide.app.state.sessionmaker() as session:
        stored = (
            (await session.execute(select(Guardian).where(Guardian.family_id == family["id"])))
            .scalars()
            .all()
        )
        row = await session.get(Family, family["id"])
    assert phone not in json.dumps([g.phone_encrypted for g in stored])
    assert row is not None and row.link_code_hash and family["link_code"] not in row.link_code_hash

    registered = [
        e for e in await guide.events("cradle.guidance.family.registered") if e.subject == family["id"]
    ]
    assert len(registered) == 1
    payload = json.dumps(registered[0].data, ensure_ascii=False)
    assert phone not in payload and "陈静" not in payload and "birth" not in payload
    assert registered[0].data["in_need"] is True and registered[0].data["children"] == 1


async def test_phones_are_unmasked_only_with_the_pii_scope_and_a_purpose_and_each_such_read_is_audited(
    guide: Guide,
) -> None:
    phone = phone_number()
    family = await guide.family(guardians=[{"relation": "father", "phone": phone}])
    pii = guide.bureau(scopes=["guidance:read", "guidance:pii"], client_id="wcwc-pii")
    url = f"/v1/families/{family['id']}"
    no_purpose = await guide.direct.get(url, headers=pii)
    assert no_purpose.json()["guardians"][0]["phone"] != phone and no_purpose.json()["pii"] == "masked"
    no_scope = await guide.direct.get(url, headers={**guide.bureau(), "X-Purpose": "case 7"})
    assert no_scope.json()["pii"] == "masked"
    purpose = "家访预约 案号 2026-117".encode()  # UTF-8 bytes, as an app sends them
    unmasked = await guide.direct.get(url, headers={**pii, "X-Purpose": purpose})
    assert unmasked.json()["guardians"][0]["phone"] == phone and unmasked.json()["pii"] == "unmasked"
    audits = await guide.count(PiiAccess, PiiAccess.record_id == family["id"])
    assert audits == 1
    async with guide.app.state.sessionmaker() as session:
        audit = (
            await session.execute(select(PiiAccess).where(PiiAccess.record_id == family["id"]))
        ).scalar_one()
    assert audit.client_id == "wcwc-pii" and audit.purpose == "家访预约 案号 2026-117"


async def test_a_parent_registering_from_the_app_is_linked_and_sees_only_its_family(guide: Guide) -> None:
    parent, own = await guide.parent_with_family()
    assert own["registered_via"] == "app" and own["linked_parents"] == 1 and own["link_code"] is None
    other = await guide.family()
    assert (await guide.direct.get(f"/v1/families/{own['id']}", headers=parent)).status_code == 200
    assert (await guide.direct.get(f"/v1/families/{other['id']}", headers=parent)).status_code == 404
    # The token's self-declared family is never trusted.
    claiming = guide.parent(claimed_family_id=other["id"])
    assert (await guide.direct.get(f"/v1/families/{other['id']}", headers=claiming)).status_code == 404
    listed = await guide.direct.get("/v1/families", headers=parent)
    assert [f["id"] for f in listed.json()["items"]] == [own["id"]]
    assert (await guide.direct.get("/v1/families", headers=claiming)).json()["items"] == []
    again = await guide.direct.post("/v1/families", json=family_body(), headers=parent)
    assert again.status_code == 409
    [linked] = [e for e in await guide.events("cradle.guidance.family.linked") if e.subject == own["id"]]
    assert linked.data["parent_id"] == guide_client_id(parent) and linked.data["linked_via"] == "registration"


async def test_a_link_code_links_a_parent_once_and_wrong_codes_are_refused(guide: Guide) -> None:
    family = await guide.family()
    parent, late = guide.parent(), guide.parent()
    wrong = await guide.direct.post("/v1/families/link", json={"code": "AAAAA-BBBBB"}, headers=parent)
    assert wrong.status_code == 404
    code = family["link_code"].lower().replace("-", " ")  # typed by hand: case and separators forgiven
    linked = await guide.direct.post("/v1/families/link", json={"code": code}, headers=parent)
    assert linked.status_code == 200 and linked.json()["id"] == family["id"]
    assert linked.json()["linked_parents"] == 1
    assert (await guide.direct.get(f"/v1/families/{family['id']}", headers=parent)).status_code == 200
    used = await guide.direct.post("/v1/families/link", json={"code": family["link_code"]}, headers=late)
    assert used.status_code == 404
    assert (await guide.direct.get(f"/v1/families/{family['id']}", headers=late)).status_code == 404
    # A station issues a fresh code for the second parent; the first one stays linked.
    fresh = await guide.direct.post(f"/v1/families/{family['id']}/link-code", headers=guide.district())
    assert fresh.status_code == 201
    second = await guide.direct.post(
        "/v1/families/link", json={"code": fresh.json()["link_code"]}, headers=late
    )
    assert second.status_code == 200 and second.json()["linked_parents"] == 2
    # Each link is told (the delivery service shows a parent its family's events by it).
    linked_events = {
        e.data["parent_id"]: e.data
        for e in await guide.events("cradle.guidance.family.linked")
        if e.subject == family["id"]
    }
    parent_id, late_id = (guide_client_id(h) for h in (parent, late))
    assert set(linked_events) == {parent_id, late_id}
    assert {e["linked_via"] for e in linked_events.values()} == {"code"}
    # Only parents redeem codes, and a station cannot get one for a family outside its district.
    assert (
        await guide.direct.post("/v1/families/link", json={"code": "x"}, headers=guide.district())
    ).status_code == 403
    elsewhere = await guide.direct.post(
        f"/v1/families/{family['id']}/link-code", headers=guide.district(HUANGPU)
    )
    assert elsewhere.status_code == 404


async def test_guessing_link_codes_is_cut_off(guide: Guide) -> None:
    family = await guide.family()
    guesser = guide.parent()
    limit = guide.app.state.settings.link_attempts_per_hour
    codes = [
        (
            await guide.direct.post("/v1/families/link", json={"code": f"GUESS{n:05d}"}, headers=guesser)
        ).status_code
        for n in range(limit)
    ]
    assert codes == [404] * limit
    blocked = await guide.direct.post(
        "/v1/families/link", json={"code": family["link_code"]}, headers=guesser
    )
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert (await guide.direct.get(f"/v1/families/{family['id']}", headers=guesser)).status_code == 404


async def test_districts_see_the_families_of_their_district_and_bureaus_the_city(guide: Guide) -> None:
    xuhui = await guide.family()
    huangpu = await guide.family(guide.district(HUANGPU), town_code=HUANGPU_TOWN)
    assert (
        await guide.direct.get(f"/v1/families/{huangpu['id']}", headers=guide.district(XUHUI))
    ).status_code == 404
    assert (
        await guide.direct.get(f"/v1/families/{huangpu['id']}", headers=guide.bureau())
    ).status_code == 200
    ids = set()
    cursor = None
    while True:
        params = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        page = (await guide.direct.get("/v1/families", params=params, headers=guide.district(XUHUI))).json()
        ids |= {f["id"] for f in page["items"]}
        assert all(f["district_code"] == XUHUI for f in page["items"])
        if not (cursor := page["next_cursor"]):
            break
    assert xuhui["id"] in ids and huangpu["id"] not in ids
    # A station registers families of its own district only; an app client sees no family.
    elsewhere = await guide.direct.post(
        "/v1/families", json=family_body(town_code=HUANGPU_TOWN), headers=guide.district()
    )
    assert elsewhere.status_code == 403
    app_client = guide.sign(Identity(client_id="app-1", kind=ClientKind.app, scopes=["guidance:read"]))
    assert (await guide.direct.get(f"/v1/families/{xuhui['id']}", headers=app_client)).status_code == 404


async def test_edits_honour_if_match_and_parents_change_only_their_own_flags(guide: Guide) -> None:
    parent, family = await guide.parent_with_family(has_handbook=False)
    url = f"/v1/families/{family['id']}"
    etag = (await guide.direct.get(url, headers=parent)).headers["etag"]
    handbook = await guide.direct.patch(
        url, json={"has_handbook": True}, headers={**parent, "If-Match": etag}
    )
    assert handbook.status_code == 200 and handbook.json()["has_handbook"] is True
    assert handbook.headers["etag"] != etag
    stale = await guide.direct.patch(
        url, json={"grandparent_carers": False}, headers={**parent, "If-Match": etag}
    )
    assert stale.status_code == 412
    not_theirs = await guide.direct.patch(url, json={"in_need": False}, headers=parent)
    assert not_theirs.status_code == 403
    station = await guide.direct.patch(
        url, json={"in_need": False, "newborn": True}, headers=guide.district()
    )
    assert (
        station.status_code == 200
        and station.json()["in_need"] is False
        and station.json()["newborn"] is True
    )
    empty = await guide.direct.patch(url, json={}, headers=guide.district())
    assert empty.status_code == 422
    born = await guide.direct.post(
        f"{url}/children", json={"birth_date": months_ago(0, days=5).isoformat()}, headers=parent
    )
    assert born.status_code == 201 and len(born.json()["children"]) == 2


async def test_every_wrong_field_of_a_family_is_named(guide: Guide) -> None:
    today = date.today()
    response = await guide.direct.post(
        "/v1/families",
        json={
            "town_code": "31010",
            "guardians": [{"relation": "aunt", "phone": "12345678901"}],
            "children": [
                {"birth_date": (today + timedelta(days=3)).isoformat()},
                {"birth_date": (today - timedelta(days=6 * 366 + 2)).isoformat()},
                {"birth_date": "2024-02-30"},
            ],
            "in_need": "maybe",
        },
        headers=guide.district(),
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {
        "town_code",
        "guardians.0.relation",
        "guardians.0.phone",
        "children.0.birth_date",
        "children.1.birth_date",
        "children.2.birth_date",
        "in_need",
    }
    messages = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert "future" in messages["children.0.birth_date"] and "6" in messages["children.1.birth_date"]
    none = await guide.direct.post(
        "/v1/families",
        json={"town_code": "310104003", "guardians": [], "children": []},
        headers=guide.district(),
    )
    assert {e["field"] for e in none.json()["errors"]} == {"guardians", "children"}
    for bad in ("not json", "[1,2]", '{"town_code": "\\u0000"}'):
        malformed = await guide.direct.post(
            "/v1/families", content=bad, headers={**guide.district(), "content-type": "application/json"}
        )
        assert malformed.status_code in (400, 422), malformed.text
    assert (await guide.direct.get("/v1/families/not-a-uuid", headers=guide.bureau())).status_code == 422


async def test_a_repeated_registration_replays_the_first_answer_with_its_link_code(guide: Guide) -> None:
    body = family_body()
    headers = {**guide.district(client_id="district-310104-idem"), "Idempotency-Key": "family-7"}
    first = await guide.direct.post("/v1/families", json=body, headers=headers)
    again = await guide.direct.post("/v1/families", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() and again.json()["link_code"]
    assert await guide.count(Family, Family.id == first.json()["id"]) == 1
    # Neither the phone nor the link code is stored in clear with the remembered answer.
    idempotency = guide.app.state.idempotency_table
    stored = await guide.scalar(select(idempotency.c.body).where(idempotency.c.key == "family-7"))
    assert first.json()["link_code"] not in stored and body["guardians"][0]["phone"] not in stored


async def test_unknown_towns_and_anonymous_or_scopeless_callers_are_refused(guide: Guide) -> None:
    unknown = await guide.direct.post(
        "/v1/families", json=family_body(town_code="310104999"), headers=guide.district()
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "town_code"
    assert (await guide.direct.get("/v1/families")).status_code == 401
    nothing = guide.bureau(scopes=["registry:read"])
    assert (await guide.direct.get("/v1/families", headers=nothing)).status_code == 403
