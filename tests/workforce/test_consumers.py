"""What the workforce hears: the registry's facility events (projection, in order) and
monitoring's confirmed incidents (bans, once however often delivered)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import nats
from sqlalchemy import func, select

from services.workforce.models import Ban, Employment, FacilityProjection, inbox
from shared.events.streams import Namespace
from tests.support import eventually
from tests.workforce.conftest import WorkforceStack

INCIDENT = "cradle.monitoring.incident.confirmed"


async def projection(wf: WorkforceStack, facility_id: str) -> FacilityProjection | None:
    async with wf.workforce.state.sessionmaker() as session:
        return await session.get(FacilityProjection, facility_id)


async def test_the_projection_follows_status_capacity_and_enrolment_and_ignores_older_events(
    wf: WorkforceStack,
) -> None:
    facility = await wf.facility(status="submitted", version=1)
    await wf.facility(facility_id=facility, status="approved", version=3)
    row = await projection(wf, facility)
    assert row is not None and row.status == "approved" and row.capacity_toddler == 15

    await wf.facility(
        facility_id=facility,
        status="approved",
        version=4,
        event="cradle.registry.enrolment.updated",
        enrolment={"infant": 7, "toddler": 12, "preschool": 18},
    )
    row = await projection(wf, facility)
    assert row is not None and (row.enrolment_infant, row.enrolment_toddler, row.enrolment_preschool) == (
        7,
        12,
        18,
    )

    # A late, older event (version 2, "submitted") changes nothing.
    await wf.publish(
        "cradle.registry.facility.submitted",
        {
            "facility_id": facility,
            "name": "old name",
            "kind": "community_point",
            "inclusive": True,
            "has_nursery_class": False,
            "district_code": "310104",
            "town_code": "310104003",
            "status": "submitted",
            "capacity": {"infant": 10, "toddler": 15, "preschool": 20},
            "enrolment": {"infant": 0, "toddler": 0, "preschool": 0},
            "opening_hours": [],
            "version": 2,
            "occurred_at": datetime.now(UTC).isoformat(),
        },
    )
    await eventually(lambda: _handled(wf, 4))
    row = await projection(wf, facility)
    assert row is not None and row.status == "approved" and row.version == 4 and row.name != "old name"

    await wf.facility(facility_id=facility, status="closed", version=5)
    person = await wf.practitioner()
    await wf.certify(person["id"])
    assert (await wf.hire(person["id"], facility)).status_code == 409


async def _handled(wf: WorkforceStack, count: int) -> bool:
    async with wf.workforce.state.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(inbox))).scalar_one() >= count


def incident(
    facility_id: str, abusers: list[str], managers: list[str], **overrides: object
) -> dict[str, object]:
    data: dict[str, object] = {
        "incident_id": str(uuid.uuid4()),
        "facility_id": facility_id,
        "district_code": "310104",
        "category": "abuse",
        "decision_ref": "徐教监〔2026〕12号",
        "decided_at": datetime.now(UTC).isoformat(),
        "abuser_practitioner_ids": abusers,
        "responsible_manager_ids": managers,
    }
    data.update(overrides)
    return data


async def test_a_confirmed_incident_bans_the_abuser_and_the_managers_once_however_often_delivered(
    wf: WorkforceStack,
) -> None:
    facility = await wf.facility()
    abuser = await wf.employed(facility)
    director = await wf.employed(facility, role="director")
    data = incident(facility, [abuser["id"]], [director["id"]])

    await wf.publish(INCIDENT, data)

    async def banned() -> list[Ban]:
        rows = await wf.rows(Ban)
        return rows if len(rows) == 2 else []

    bans = await eventually(banned)
    assert {(b.practitioner_id, b.role) for b in bans} == {
        (abuser["id"], "abuser"),
        (director["id"], "responsible_manager"),
    }
    assert {b.incident_id for b in bans} == {data["incident_id"]}
    assert {b.issued_by for b in bans} == {"workforce"}
    assert {e.status for e in await wf.rows(Employment)} == {"ended"}

    # The same finding again: re-published with a new event id, and re-delivered a day later.
    await wf.publish(INCIDENT, data)
    await wf.publish(INCIDENT, data, time=datetime.now(UTC) + timedelta(days=1))
    await eventually(lambda: _handled(wf, 4))  # the facility event + 3 incident deliveries
    assert await wf.table_count(Ban) == 2
    issued = await wf.events("cradle.workforce.ban.issued")
    assert len(issued) == 2
    assert {e.data["incident_id"] for e in issued} == {data["incident_id"]}
    assert all([f["facility_id"] for f in e.data["facilities"]] == [facility] for e in issued)

    # The banned can be hired nowhere.
    elsewhere = await wf.facility(district_code="310105")
    assert (await wf.hire(abuser["id"], elsewhere)).status_code == 409
    assert (await wf.hire(director["id"], elsewhere, role="director")).status_code == 409


async def dead_letters(wf: WorkforceStack) -> list[dict[str, str]]:
    ns = Namespace(wf.namespace)
    nc = await nats.connect(wf.nats_url)
    try:
        js = nc.jetstream()
        count = (await js.stream_info(ns.dead_letter_stream)).state.messages
        found = [await js.get_msg(ns.dead_letter_stream, seq) for seq in range(1, count + 1)]
        return [dict(m.headers or {}) for m in found]
    finally:
        await nc.close()


async def test_a_confirmed_incident_naming_someone_never_employed_there_bans_nobody_and_is_parked(
    wf: WorkforceStack,
) -> None:
    """Defence in depth: monitoring checks whom a finding may name, and the workforce checks again.
    One named person who never worked at the facility (or left before the incident), and nobody is
    banned on the event's word: it is dead-lettered, with the reason, where operators look."""
    facility, elsewhere = await wf.facility(), await wf.facility(district_code="310105")
    abuser = await wf.employed(facility)
    outsider = await wf.employed(elsewhere)
    left = await wf.employed(facility, start_date="2025-01-01")
    ended = await wf.direct.post(
        f"/v1/employments/{left['employment']['id']}/end",
        json={"end_date": "2025-06-30", "reason": "resigned"},
        headers=wf.sign(),
    )
    assert ended.status_code == 200, ended.text
    occurred = datetime.now(UTC) - timedelta(days=2)
    named_outsider = incident(facility, [abuser["id"]], [outsider["id"]], occurred_at=occurred.isoformat())
    named_leaver = incident(facility, [abuser["id"]], [left["id"]], occurred_at=occurred.isoformat())
    await wf.publish(INCIDENT, named_outsider)
    await wf.publish(INCIDENT, named_leaver)

    async def parked() -> list[dict[str, str]] | None:
        letters = await dead_letters(wf)
        return letters if len(letters) == 2 else None

    letters = await eventually(parked)
    errors = " ".join(letter["Cradle-Error"] for letter in letters)
    assert outsider["id"] in errors and left["id"] in errors and "nobody was banned" in errors
    assert abuser["id"] not in errors
    assert await wf.table_count(Ban) == 0
    assert {e.status for e in await wf.rows(Employment, Employment.practitioner_id == abuser["id"])} == {
        "active"
    }
    assert await wf.events("cradle.workforce.ban.issued") == []

    # The leaver was employed there at the time of an older incident: that finding bans them.
    older = incident(facility, [left["id"]], [], occurred_at=datetime(2025, 3, 1, tzinfo=UTC).isoformat())
    await wf.publish(INCIDENT, older)
    [ban] = await eventually(lambda: wf.rows(Ban))
    assert ban.practitioner_id == left["id"] and ban.incident_id == older["incident_id"]
