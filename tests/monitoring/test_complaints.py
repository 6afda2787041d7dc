"""Complaints (投诉), through the gateway: lodged without a token and followed by reference and
code, by a parent's account, handled by the facility's district (acknowledged, answered), the
complainant seen only by that district, late ones escalated once per deadline on Shanghai's working
calendar, a founded one on the registry's credit record, and the risk score moving with them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from services.monitoring.jobs import flag_missed_deadlines
from services.monitoring.models import Complaint, PiiAccess
from services.monitoring.schemas import ComplaintCreate
from services.monitoring.service import complaints
from shared.clock import as_utc
from shared.identity import PUBLIC_IDENTITY
from tests.monitoring.conftest import MonitoringStack
from tests.support import eventually

NAME, PHONE = "王晓梅", "13800138000"


def complaint_body(facility_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "facility_id": facility_id,
        "category": "food",
        "description": "连续一周午餐没有按公示食谱提供",
        "complainant_name": NAME,
        "complainant_phone": PHONE,
    } | overrides


async def lodge(mon: MonitoringStack, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return await mon.client.post("/v1/complaints", json=body, headers=headers or {})


async def stored(mon: MonitoringStack, complaint_id: str) -> Complaint:
    async with mon.monitoring.state.sessionmaker() as session:
        complaint = await session.get(Complaint, complaint_id)
        assert complaint is not None
        return complaint


async def test_an_anonymous_complaint_from_lodging_to_the_credit_record(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    response = await lodge(mon, complaint_body(facility["id"]))
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["status"] == "lodged" and receipt["code"] and receipt["reference"].startswith("TS")
    assert response.headers["Cache-Control"] == "no-store"
    row = await stored(mon, receipt["id"])
    # Sealed at rest; the code is kept only as a keyed hash.
    assert NAME not in (row.name_encrypted or "") and PHONE not in (row.phone_encrypted or "")
    assert row.code_hash and receipt["code"].replace("-", "") not in row.code_hash
    assert row.district_code == "310104" and row.complainant_client_id is None

    follow = {"X-Complaint-Reference": receipt["reference"], "X-Complaint-Code": receipt["code"]}
    progress = await mon.client.get("/v1/complaints/lookup", headers=follow)
    assert progress.status_code == 200, progress.text
    assert progress.json()["status"] == "lodged" and progress.json()["answer"] is None
    assert "complainant" not in progress.json()
    no_code = {"X-Complaint-Reference": receipt["reference"]}
    assert (await mon.client.get("/v1/complaints/lookup", headers=no_code)).status_code == 422
    wrong = {**follow, "X-Complaint-Code": "AAAA-BBBB-CCCC"}
    assert (await mon.client.get("/v1/complaints/lookup", headers=wrong)).status_code == 404
    lowercase = {"reference": receipt["reference"].lower(), "code": receipt["code"].lower()}
    assert (await mon.client.post("/v1/complaints/lookup", json=lowercase)).status_code == 200
    # Without a token nothing else is open.
    assert (await mon.client.get("/v1/complaints")).status_code == 401
    assert (await mon.client.get(f"/v1/complaints/{receipt['id']}")).status_code == 401

    # The handling district sees it masked, unmasked only with monitoring:pii and a purpose (audited).
    district = await mon.headers("district")
    listed = (await mon.client.get("/v1/complaints", headers=district)).json()["items"]
    assert [c["id"] for c in listed] == [receipt["id"]]
    assert (
        listed[0]["complainant"] == {"name": "王**", "phone": "138****8000"} and listed[0]["pii"] == "masked"
    )
    purpose = {"X-Purpose": "回访投诉人".encode()}  # UTF-8, as a client sends it
    masked = await mon.client.get(f"/v1/complaints/{receipt['id']}", headers=district | purpose)
    assert masked.json()["pii"] == "masked"
    handler = await mon.headers_for(
        name="徐汇区投诉处理",
        kind="district",
        district_code="310104",
        scopes=["monitoring:read", "monitoring:write", "monitoring:pii"],
    )
    plain = await mon.client.get(f"/v1/complaints/{receipt['id']}", headers=handler)
    assert plain.json()["pii"] == "masked"  # no purpose, no names
    unmasked = await mon.client.get(f"/v1/complaints/{receipt['id']}", headers=handler | purpose)
    assert unmasked.json()["complainant"] == {"name": NAME, "phone": PHONE}
    async with mon.monitoring.state.sessionmaker() as session:
        audits = (await session.execute(select(PiiAccess))).scalars().all()
    assert [(a.record_id, a.purpose) for a in audits] == [(receipt["id"], "回访投诉人")]

    # Another district sees nothing; the operator sees the complaint, never who complained.
    other = await mon.headers("other_district")
    assert (await mon.client.get(f"/v1/complaints/{receipt['id']}", headers=other)).status_code == 404
    assert (await mon.client.get("/v1/complaints", headers=other)).json()["items"] == []
    operator = await mon.client.get(f"/v1/complaints/{receipt['id']}", headers=await mon.headers("operator"))
    assert operator.status_code == 200
    assert operator.json()["complainant"] is None and operator.json()["complainant_kind"] is None
    assert operator.json()["pii"] == "withheld"
    assert (
        await mon.client.post(
            f"/v1/complaints/{receipt['id']}/acknowledge", headers=await mon.headers("operator")
        )
    ).status_code == 403
    assert (
        await mon.client.post(f"/v1/complaints/{receipt['id']}/acknowledge", headers=other)
    ).status_code == 404

    acknowledged = await mon.client.post(f"/v1/complaints/{receipt['id']}/acknowledge", headers=district)
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["status"] == "acknowledged" and acknowledged.headers["ETag"] == '"2"'
    stale = await mon.client.post(
        f"/v1/complaints/{receipt['id']}/answer",
        json={"outcome": "founded", "answer": "情况属实"},
        headers=district | {"If-Match": '"1"'},
    )
    assert stale.status_code == 412
    answer = {
        "outcome": "partly_founded",
        "answer": "经核查，5月12日至16日午餐未按公示食谱提供，已责令整改。",
    }
    answered = await mon.client.post(f"/v1/complaints/{receipt['id']}/answer", json=answer, headers=district)
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "answered" and answered.json()["outcome"] == "partly_founded"
    again = await mon.client.post(f"/v1/complaints/{receipt['id']}/answer", json=answer, headers=district)
    assert again.status_code == 409

    progress = (await mon.client.get("/v1/complaints/lookup", headers=follow)).json()
    assert progress["status"] == "answered" and progress["answer"] == answer["answer"]

    # Events name the complaint, never the complainant nor the words.
    for kind in ("lodged", "acknowledged", "answered"):
        [event] = await mon.events(f"cradle.monitoring.complaint.{kind}")
        text = str(event["data"])
        assert event["data"]["complaint_id"] == receipt["id"]
        assert NAME not in text and PHONE not in text and "午餐" not in text

    # The registry's credit record: one entry, from monitoring's event.
    async def entered() -> list[dict[str, Any]]:
        response = await mon.client.get(f"/v1/public/facilities/{facility['id']}/credit-record")
        assert response.status_code == 200, response.text
        return [e for e in response.json()["items"] if e["category"] == "complaint_founded"]

    await eventually(entered)
    [entry] = await entered()
    assert "部分属实" in entry["title"] and "王" not in entry["detail"]


async def test_who_may_lodge_and_what_is_refused(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    for who in ("operator", "district"):
        refused = await lodge(mon, complaint_body(facility["id"]), await mon.headers(who))
        assert refused.status_code == 403, refused.text
    bad = await lodge(
        mon, {"facility_id": "nope", "category": "noise", "description": "", "complainant_phone": "call me"}
    )
    assert bad.status_code == 422
    assert sorted(e["field"] for e in bad.json()["errors"]) == [
        "category",
        "complainant_phone",
        "description",
        "facility_id",
    ]
    unknown = await lodge(mon, complaint_body("3fa85f64-5717-4562-b3fc-2c963f66afa6"))
    assert unknown.status_code == 404

    # A bureau lodges for a caller of its hotline: the caller gets the code through the bureau.
    edu = await lodge(mon, complaint_body(facility["id"], category="safety"), await mon.headers("EDU"))
    assert edu.status_code == 201 and edu.json()["code"]

    # A parent follows its complaint through its account: no code; it sees its own, not others'.
    registered = await mon.client.post(
        "/v1/auth/parents/register", json={"phone": "13912345678", "password": "correct horse"}
    )
    assert registered.status_code == 201, registered.text
    parent = {"Authorization": f"Bearer {registered.json()['access_token']}"}
    own = await lodge(mon, complaint_body(facility["id"], complainant_name=None), parent)
    assert own.status_code == 201, own.text
    assert own.json()["code"] is None
    mine = (await mon.client.get("/v1/complaints", headers=parent)).json()["items"]
    assert [c["id"] for c in mine] == [own.json()["id"]] and mine[0]["complainant_kind"] == "parent"
    assert (await mon.client.get(f"/v1/complaints/{edu.json()['id']}", headers=parent)).status_code == 404
    assert (
        await mon.client.post(f"/v1/complaints/{own.json()['id']}/acknowledge", headers=parent)
    ).status_code == 403


async def test_deadlines_count_working_days_and_late_complaints_escalate_once(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    desk = mon.monitoring.state.complaints
    # Friday 2026-02-13, 10:00 in Shanghai: Saturday 02-14 is a make-up workday, 02-15..23 are the
    # Spring Festival, Saturday 02-28 is worked too.
    lodged_at = datetime(2026, 2, 13, 2, 0, tzinfo=UTC)
    async with mon.monitoring.state.sessionmaker() as session:
        found = await complaints.lodge(
            session=session,
            caller=PUBLIC_IDENTITY,
            data=ComplaintCreate(**complaint_body(facility["id"])),
            desk=desk,
            now=lodged_at,
        )
        await session.commit()
    complaint = found.complaint
    assert as_utc(complaint.acknowledge_due_at) == datetime(2026, 2, 14, 16, 0, tzinfo=UTC)  # end of 02-14
    assert as_utc(complaint.answer_due_at) == datetime(2026, 3, 12, 16, 0, tzinfo=UTC)  # end of 03-12

    maker = mon.monitoring.state.sessionmaker
    settings = mon.monitoring.state.settings
    before = await flag_missed_deadlines(
        maker=maker, settings=settings, now=datetime(2026, 2, 14, 15, 0, tzinfo=UTC)
    )
    assert before["complaints_escalated"] == 0
    late_ack = datetime(2026, 2, 14, 16, 1, tzinfo=UTC)
    assert (await flag_missed_deadlines(maker=maker, settings=settings, now=late_ack))[
        "complaints_escalated"
    ] == 1
    assert (await flag_missed_deadlines(maker=maker, settings=settings, now=late_ack))[
        "complaints_escalated"
    ] == 0
    assert (await stored(mon, complaint.id)).status == "escalated"

    # The district still acknowledges an escalated complaint; it stays escalated for the city.
    district = await mon.headers("district")
    acknowledged = await mon.client.post(f"/v1/complaints/{complaint.id}/acknowledge", headers=district)
    assert acknowledged.status_code == 200 and acknowledged.json()["status"] == "escalated"
    assert acknowledged.json()["escalated_at"] is not None
    escalated = await mon.client.get("/v1/complaints?status=escalated", headers=await mon.headers("EDU"))
    assert [c["id"] for c in escalated.json()["items"]] == [complaint.id]

    late_answer = datetime(2026, 3, 12, 16, 1, tzinfo=UTC)
    for _ in range(2):
        await flag_missed_deadlines(maker=maker, settings=settings, now=late_answer + timedelta(days=1))
    events = await mon.events("cradle.monitoring.complaint.escalated")
    assert [(e["data"]["deadline"], e["data"]["due_at"][:16]) for e in events] == [
        ("acknowledge", "2026-02-14T16:00"),
        ("answer", "2026-03-12T16:00"),
    ]


async def test_complaints_move_the_risk_score(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    district = await mon.headers("district")

    async def reasons() -> dict[str, int]:
        response = await mon.client.get(f"/v1/facilities/{facility['id']}/risk", headers=district)
        assert response.status_code == 200, response.text
        return {r["code"]: r["count"] for r in response.json()["reasons"]}

    assert "open_complaints" not in await reasons()
    ids = [(await lodge(mon, complaint_body(facility["id"]))).json()["id"] for _ in range(2)]
    assert (await reasons())["open_complaints"] == 2
    await mon.client.post(
        f"/v1/complaints/{ids[0]}/answer", json={"outcome": "founded", "answer": "属实"}, headers=district
    )
    await mon.client.post(
        f"/v1/complaints/{ids[1]}/answer", json={"outcome": "unfounded", "answer": "不属实"}, headers=district
    )
    after = await reasons()
    assert after.get("founded_complaints") == 1 and "open_complaints" not in after
