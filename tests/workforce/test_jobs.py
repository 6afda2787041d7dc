"""The scheduled jobs, run at chosen moments: escalation of unacknowledged ban notifications after
24 h, expired certificates announced once, the annual re-check."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.workforce.jobs import run_due_jobs
from services.workforce.models import BackgroundCheck, BanNotification, Recheck
from shared.clock import shanghai_today
from tests.workforce.conftest import WorkforceStack, start_workforce_stack


async def run_jobs(wf: WorkforceStack, now: datetime) -> Any:
    return await run_due_jobs(
        maker=wf.workforce.state.sessionmaker, workforce=wf.workforce.state.workforce, now=now
    )


async def test_a_notification_unacknowledged_for_24_hours_is_escalated_to_the_district_once(
    wf: WorkforceStack,
) -> None:
    answered, silent = await wf.facility(), await wf.facility(district_code="310105")
    person = await wf.employed(answered)
    assert (await wf.hire(person["id"], silent)).status_code == 201
    ban = (await wf.ban(person["raw_id_number"])).json()
    ack = await wf.direct.post(
        f"/v1/bans/{ban['id']}/notifications/{answered}/acknowledge", headers=wf.operator(answered)
    )
    assert ack.status_code == 200
    issued = datetime.fromisoformat(ban["issued_at"])

    assert (await run_jobs(wf, issued + timedelta(hours=23, minutes=59))).escalated == 0
    assert (await run_jobs(wf, issued + timedelta(hours=24, minutes=1))).escalated == 1
    assert (await run_jobs(wf, issued + timedelta(hours=48))).escalated == 0

    [event] = await wf.events("cradle.workforce.ban_notification.unacknowledged")
    assert event.data["ban_id"] == ban["id"]
    assert (event.data["facility_id"], event.data["district_code"]) == (silent, "310105")
    assert datetime.fromisoformat(event.data["notified_at"]) == issued
    [escalated] = await wf.rows(BanNotification, BanNotification.facility_id == silent)
    assert escalated.escalated_at is not None and escalated.acknowledged_at is None


async def test_the_acknowledgement_deadline_is_configuration(
    databases: Any, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> None:
    async with start_workforce_stack(
        databases=databases, nats_url=shared_nats_url, namespace=namespace, keys=keys, ban_acknowledge_hours=2
    ) as wf:
        facility = await wf.facility()
        person = await wf.employed(facility)
        ban = (await wf.ban(person["raw_id_number"])).json()
        assert ban["notifications"][0]["acknowledge_by"] == (
            datetime.fromisoformat(ban["issued_at"]) + timedelta(hours=2)
        ).isoformat().replace("+00:00", "Z")
        assert (await run_jobs(wf, datetime.now(UTC) + timedelta(hours=2, minutes=1))).escalated == 1


async def test_an_expired_certificate_is_announced_once(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    person = await wf.employed(facility)
    today = date.today()
    await wf.certify(
        person["id"],
        "teacher",
        issued_on=(today - timedelta(days=700)).isoformat(),
        expires_on=(today + timedelta(days=10)).isoformat(),
    )
    assert (await run_jobs(wf, datetime.now(UTC))).certificates_expired == 0
    later = datetime.now(UTC) + timedelta(days=12)
    assert (await run_jobs(wf, later)).certificates_expired == 1
    assert (await run_jobs(wf, later)).certificates_expired == 0
    [event] = await wf.events("cradle.workforce.certificate.expired")
    assert event.data["type"] == "teacher" and event.data["employed_at_facility_ids"] == [facility]


async def test_the_annual_recheck_covers_every_employed_practitioner_once_a_year(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    # Each hire opened its own background check, answered clear (T12); one left since.
    staff = [await wf.employed(facility) for _ in range(3)]
    await wf.direct.post(
        f"/v1/employments/{staff[2]['employment']['id']}/end",
        json={"end_date": date.today().isoformat(), "reason": "resigned"},
        headers=wf.sign(),
    )

    now = datetime.now(UTC)
    assert (await run_jobs(wf, now)).rechecked == 2
    assert (await run_jobs(wf, now + timedelta(hours=1))).rechecked == 0
    # The checks at hiring are this year's: none is due yet.
    assert await wf.table_count(BackgroundCheck, BackgroundCheck.reason == "annual") == 0

    year = shanghai_today(now).year
    summary = await wf.direct.get("/v1/compliance/rechecks", params={"year": year}, headers=wf.sign())
    assert summary.status_code == 200
    assert summary.json() == {
        "year": year,
        "employed": 2,
        "rechecked": 2,
        "banned_found": 0,
        "background_checks_opened": 0,
        "background_checks_pending": 0,
        "background_checks_clear": 0,
        "background_checks_flagged": 0,
    }

    # A year later both are re-checked again, and both checks are due.
    next_year = now + timedelta(days=366)
    assert (await run_jobs(wf, next_year)).rechecked == 2
    assert await wf.table_count(Recheck, Recheck.year == shanghai_today(next_year).year) == 2
    opened = await wf.rows(BackgroundCheck, BackgroundCheck.reason == "annual")
    assert sorted(c.practitioner_id for c in opened) == sorted(p["id"] for p in staff[:2])
    # Each asked of POLICE; no facility named: the bureaus' alone.
    requested = [
        e.data
        for e in await wf.events("cradle.workforce.background_check.requested")
        if e.data["reason"] == "annual"
    ]
    assert len(requested) == 2 and all(r["facility_id"] is None for r in requested)
    elsewhere = await wf.direct.get(
        "/v1/compliance/rechecks", params={"year": year}, headers=wf.district("310105")
    )
    assert elsewhere.json()["employed"] == 0 and elsewhere.json()["rechecked"] == 0
