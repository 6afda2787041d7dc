"""Lifetime bans: issuing ends every employment at once and tells each employer; rescission keeps
both records; ban checks are audited every time and never fail open."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from services.workforce.app import create_app
from services.workforce.models import Ban, BanCheck, BanNotification, BanRescission, Employment, HireAttempt
from shared.identity import ClientKind, Identity, IdentitySigner
from tests.support import DatabaseFactory, running
from tests.workforce.conftest import ADMIN, WorkforceStack, new_id_number, workforce_settings


async def test_a_ban_ends_every_active_employment_and_names_the_facilities(wf: WorkforceStack) -> None:
    xuhui, changning = await wf.facility(), await wf.facility(district_code="310105")
    person = await wf.employed(xuhui)
    second = await wf.hire(person["id"], changning)
    assert second.status_code == 201

    response = await wf.ban(person["raw_id_number"], role="abuser", decision_ref="(2026)沪0104刑初1号")
    assert response.status_code == 201, response.text
    ban = response.json()
    assert ban["status"] == "active" and ban["practitioner_id"] == person["id"]
    assert ban["id_number"] == person["id_number"] and ban["pii"] == "masked"
    assert {n["facility_id"] for n in ban["notifications"]} == {xuhui, changning}

    employments = await wf.rows(Employment)
    assert {(e.status, e.end_reason) for e in employments} == {("ended", "ban")}

    [issued] = await wf.events("cradle.workforce.ban.issued")
    assert issued.subject == ban["id"]
    assert issued.data["ban_id"] == ban["id"] and issued.data["role"] == "abuser"
    assert issued.data["decision_ref"] == "(2026)沪0104刑初1号"
    assert issued.data["practitioner_id"] == person["id"] and issued.data["incident_id"] is None
    assert sorted((f["facility_id"], f["district_code"]) for f in issued.data["facilities"]) == sorted(
        [(xuhui, "310104"), (changning, "310105")]
    )
    assert {f["employment_id"] for f in issued.data["facilities"]} == {e.id for e in employments}
    ended = await wf.events("cradle.workforce.employment.ended")
    assert sorted(e.data["reason"] for e in ended) == ["ban", "ban"]

    # Each employer is told, may see the ban, and must acknowledge.
    operator = wf.operator(xuhui)
    seen = await wf.direct.get(f"/v1/bans/{ban['id']}", headers=operator)
    assert seen.status_code == 200 and [n["facility_id"] for n in seen.json()["notifications"]] == [xuhui]
    pending = await wf.direct.get("/v1/compliance/ban-notifications", headers=operator)
    assert [n["ban_id"] for n in pending.json()["items"]] == [ban["id"]]
    ack = await wf.direct.post(f"/v1/bans/{ban['id']}/notifications/{xuhui}/acknowledge", headers=operator)
    assert ack.status_code == 200 and ack.json()["acknowledged_at"]
    assert (await wf.direct.get("/v1/compliance/ban-notifications", headers=operator)).json() == {
        "items": [],
        "next_cursor": None,
    }
    assert (
        await wf.direct.post(f"/v1/bans/{ban['id']}/notifications/{changning}/acknowledge", headers=operator)
    ).status_code == 404
    bystander = wf.operator(await wf.facility())
    assert (await wf.direct.get(f"/v1/bans/{ban['id']}", headers=bystander)).status_code == 404


async def test_a_banned_person_cannot_be_hired_and_the_attempt_is_recorded_and_published(
    wf: WorkforceStack,
) -> None:
    # The ban comes first, from a court record: the person was never registered.
    id_number = new_id_number()
    ban = await wf.ban(id_number, role="responsible_manager")
    assert ban.status_code == 201 and ban.json()["practitioner_id"] is None
    facility = await wf.facility()
    operator = wf.operator(facility)
    person = await wf.practitioner(headers=operator, id_number=id_number)
    await wf.certify(person["id"])

    refused = await wf.hire(person["id"], facility, headers=operator)
    assert refused.status_code == 409
    assert refused.json()["type"] == "/problems/banned-person"
    assert refused.json()["ban_ids"] == [ban.json()["id"]]
    assert await wf.table_count(Employment) == 0
    [attempt] = await wf.rows(HireAttempt)
    assert (attempt.practitioner_id, attempt.facility_id, attempt.reason) == (person["id"], facility, "ban")
    [blocked] = await wf.events("cradle.workforce.hire.blocked")
    assert blocked.data == {
        "facility_id": facility,
        "district_code": "310104",
        "practitioner_id": person["id"],
        "reason": "ban",
        "blocked_at": blocked.data["blocked_at"],
    }


async def test_a_ban_needs_the_ban_scope_and_one_decision_bans_once(wf: WorkforceStack) -> None:
    id_number = new_id_number()
    no_scope = await wf.ban(id_number, headers=wf.bureau(scopes=["workforce:read", "workforce:write"]))
    assert no_scope.status_code == 403
    first = await wf.ban(id_number, decision_ref="D-1")
    again = await wf.ban(id_number, decision_ref="D-1")
    assert again.status_code == 409 and again.json()["ban_id"] == first.json()["id"]
    bad = await wf.ban(id_number[:-1] + ("0" if id_number[-1] != "0" else "1"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "id_number"
    assert await wf.table_count(Ban) == 1


BAN_SCOPES = ["workforce:read", "workforce:write", "workforce:ban"]


async def test_only_edu_and_police_bureau_clients_ban_whatever_scopes_others_hold(wf: WorkforceStack) -> None:
    """The scope reaches the path; the law decides who acts: a district, an operator and a bureau
    of another department are all refused, and nothing changes. (The admin client holds no
    `workforce:ban` at all.)"""
    facility = await wf.facility()
    person = await wf.employed(facility)
    refused = await wf.ban(person["raw_id_number"], headers=wf.sign(ADMIN))
    assert refused.status_code == 403, refused.text
    for who in (
        wf.district(scopes=BAN_SCOPES),
        wf.operator(facility, scopes=BAN_SCOPES),
        wf.bureau("HEALTH"),
        # A district client whose bureau field says POLICE is still a district.
        wf.sign(
            Identity(
                client_id="d-pol",
                kind=ClientKind.district,
                district_code="310104",
                bureau="POLICE",
                scopes=BAN_SCOPES,
            )
        ),
    ):
        refused = await wf.ban(person["raw_id_number"], headers=who)
        assert refused.status_code == 403, refused.text
        assert "EDU and POLICE" in refused.json()["detail"]
    assert await wf.table_count(Ban) == 0
    assert {e.status for e in await wf.rows(Employment)} == {"active"}
    assert await wf.events("cradle.workforce.ban.issued") == []
    for department in ("EDU", "POLICE"):
        issued = await wf.ban(person["raw_id_number"], headers=wf.bureau(department))
        assert issued.status_code == 201, issued.text
    assert await wf.table_count(Ban) == 2


async def test_a_rescission_is_recorded_beside_the_ban_which_is_never_deleted(wf: WorkforceStack) -> None:
    id_number = new_id_number()
    ban = (await wf.ban(id_number)).json()
    path = f"/v1/bans/{ban['id']}"
    body = {"reason": "身份信息录入错误", "authority_ref": "沪高法复〔2027〕1号"}
    not_allowed = await wf.direct.post(
        path + "/rescind", json=body, headers=wf.bureau(scopes=["workforce:read"])
    )
    assert not_allowed.status_code == 403
    for stranger in (wf.sign(ADMIN), wf.district(scopes=BAN_SCOPES), wf.bureau("HEALTH")):
        refused = await wf.direct.post(path + "/rescind", json=body, headers=stranger)
        assert refused.status_code == 403, refused.text
    edu = wf.bureau("EDU")
    missing = await wf.direct.post(path + "/rescind", json={"reason": "x"}, headers=edu)
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "authority_ref"
    rescinded = await wf.direct.post(path + "/rescind", json=body, headers=edu)
    assert rescinded.status_code == 200, rescinded.text
    assert rescinded.json()["status"] == "rescinded"
    assert rescinded.json()["rescission"]["authority_ref"] == "沪高法复〔2027〕1号"
    assert (await wf.direct.post(path + "/rescind", json=body, headers=edu)).status_code == 409
    assert (await wf.direct.delete(path, headers=wf.sign())).status_code == 405
    assert await wf.table_count(Ban) == 1 and await wf.table_count(BanRescission) == 1
    [event] = await wf.events("cradle.workforce.ban.rescinded")
    assert event.data["ban_id"] == ban["id"] and event.data["authority_ref"] == "沪高法复〔2027〕1号"
    check = await wf.direct.post("/v1/ban-checks", json={"id_number": id_number}, headers=wf.sign())
    assert check.json()["banned"] is False


async def test_every_ban_check_is_audited_refused_and_invalid_ones_too(wf: WorkforceStack) -> None:
    banned, clean = new_id_number(), new_id_number()
    ban = (await wf.ban(banned)).json()
    reader = wf.bureau("HRSS", scopes=["workforce:read"])
    yes = await wf.direct.post(
        "/v1/ban-checks", json={"id_number": banned}, headers={**reader, "X-Purpose": "hiring check"}
    )
    assert yes.status_code == 200
    assert yes.json()["banned"] is True and [b["ban_id"] for b in yes.json()["bans"]] == [ban["id"]]
    no = await wf.direct.post("/v1/ban-checks", json={"id_number": clean}, headers=reader)
    assert no.json() == {"banned": False, "bans": [], "checked_at": no.json()["checked_at"]}

    writer_only = wf.operator(scopes=["workforce:write"])
    refused = await wf.direct.post("/v1/ban-checks", json={"id_number": banned}, headers=writer_only)
    assert refused.status_code == 403 and "recorded" in refused.json()["detail"]
    invalid = await wf.direct.post("/v1/ban-checks", json={"id_number": "11010519491231002x"}, headers=reader)
    assert invalid.status_code == 422 and "upper-case X" in invalid.json()["errors"][0]["message"]

    audits = sorted(await wf.rows(BanCheck), key=lambda r: r.checked_at)
    assert [a.outcome for a in audits] == ["banned", "not_banned", "refused", "invalid"]
    assert audits[0].purpose == "hiring check" and audits[0].client_id.startswith("hrss-")
    assert audits[2].client_kind == "operator" and audits[2].id_hash is None
    assert all(banned not in (a.id_hash or "") for a in audits)


async def test_a_ban_check_through_the_gateway_without_the_scope_is_refused_and_audited(
    wf: WorkforceStack,
) -> None:
    headers = await wf.stack.headers_for(name="某托育机构", kind="operator", scopes=["workforce:write"])
    response = await wf.gateway.post("/v1/ban-checks", json={"id_number": new_id_number()}, headers=headers)
    assert response.status_code == 403
    [audit] = await wf.rows(BanCheck)
    assert audit.outcome == "refused" and audit.client_kind == "operator"
    allowed = await wf.stack.headers_for(
        name="市人社局", kind="bureau", bureau="HRSS", scopes=["workforce:read"]
    )
    ok = await wf.gateway.post("/v1/ban-checks", json={"id_number": new_id_number()}, headers=allowed)
    assert ok.status_code == 200 and ok.json()["banned"] is False
    assert await wf.table_count(BanCheck) == 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_ban_check_with_the_database_down_is_a_503_never_not_banned(
    databases: DatabaseFactory, shared_nats_url: str, namespace: str, keys: dict[str, Any], tmp_path: Path
) -> None:
    banned = new_id_number()
    sqlite = databases.backend == "sqlite"
    if sqlite:
        # A real database, with a ban in it, that goes away while the service runs.
        home = tmp_path / "data"
        home.mkdir()
        shutil.copyfile(make_url(await databases.fresh("workforce")).database or "", home / "workforce.db")
        url = f"sqlite+aiosqlite:///{home / 'workforce.db'}"
    else:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/workforce"
    app = create_app(workforce_settings(url=url, nats_url=shared_nats_url, namespace=namespace, keys=keys))
    signer = IdentitySigner(keys["signing"])
    reader = Identity(
        client_id="police",
        kind=ClientKind.bureau,
        bureau="POLICE",
        scopes=["workforce:read", "workforce:ban"],
    )
    refused = Identity(client_id="op", kind=ClientKind.operator, scopes=["workforce:write"])
    async with (
        running(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client,
    ):
        if sqlite:
            issued = await client.post(
                "/v1/bans",
                json={
                    "id_number": banned,
                    "name": "赵六",
                    "reason": "虐童",
                    "decision_ref": "D",
                    "role": "abuser",
                },
                headers={"x-cradle-identity": signer.sign(reader)},
            )
            assert issued.status_code == 201
            home.rename(tmp_path / "gone")
            await app.state.engine.dispose()  # pooled connections would still hold the old file open
        for identity in (reader, refused):
            for number in (banned, new_id_number()):
                response = await client.post(
                    "/v1/ban-checks",
                    json={"id_number": number},
                    headers={"x-cradle-identity": signer.sign(identity)},
                )
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"]
                assert "banned" not in response.json()


async def test_unacknowledged_notifications_list_only_for_the_callers_facilities(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    person = await wf.employed(facility)
    await wf.ban(person["raw_id_number"])
    district = await wf.direct.get("/v1/compliance/ban-notifications", headers=wf.district("310104"))
    assert [n["facility_id"] for n in district.json()["items"]] == [facility]
    elsewhere = await wf.direct.get("/v1/compliance/ban-notifications", headers=wf.district("310105"))
    assert elsewhere.json()["items"] == []
    [notification] = await wf.rows(BanNotification)
    assert notification.acknowledged_at is None and notification.escalated_at is None
