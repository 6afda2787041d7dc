"""The workforce's scheduled jobs with two replicas: a round is taken by one replica at a time
(shared/jobs.py), so an expired certificate is announced once however many schedulers fire."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

from services.workforce.jobs import run_round
from shared.jobs import round_alone
from tests.support import DatabaseFactory
from tests.workforce.conftest import WorkforceStack


async def test_two_replicas_schedulers_at_once_announce_an_expired_certificate_once(
    wf: WorkforceStack, databases: DatabaseFactory
) -> None:
    facility = await wf.facility()
    person = await wf.employed(facility)
    today = date.today()
    await wf.certify(
        person["id"],
        "teacher",
        issued_on=(today - timedelta(days=700)).isoformat(),
        expires_on=(today + timedelta(days=10)).isoformat(),
    )
    maker, workforce = wf.workforce.state.sessionmaker, wf.workforce.state.workforce
    later = datetime.now(UTC) + timedelta(days=12)
    if databases.backend == "postgres":
        # While another replica holds the round, this one skips it and announces nothing.
        async with round_alone(maker, "workforce.jobs") as other_has_it:
            assert other_has_it
            assert await run_round(maker=maker, workforce=workforce, now=later) is None
    if databases.backend == "postgres":
        rounds = await asyncio.gather(
            *(run_round(maker=maker, workforce=workforce, now=later) for _ in range(2))
        )
    else:  # one writer: replicas are refused on SQLite, one process runs its rounds in turn
        rounds = [
            await run_round(maker=maker, workforce=workforce, now=later),
            await run_round(maker=maker, workforce=workforce, now=later),
        ]
    assert sum(r.certificates_expired for r in rounds if r is not None) == 1
    [event] = await wf.events("cradle.workforce.certificate.expired")
    assert event.data["employed_at_facility_ids"] == [facility]
