"""A ban issued while the same person is being hired: whichever commits first, no active
employment of a banned person survives. Many concurrent pairs, on PostgreSQL (row locks) and on
SQLite (one writer at a time)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.models import Ban, Employment, HireAttempt
from services.workforce.schemas import BanCreate, EmploymentCreate
from services.workforce.service import bans, hiring
from shared.db import session_scope
from shared.identity import ClientKind, Identity
from tests.workforce.conftest import CITY, WorkforceStack


async def test_concurrent_ban_and_hire_never_leave_a_banned_person_employed(wf: WorkforceStack) -> None:
    pairs = 40 if wf.workforce.state.engine.dialect.name == "postgresql" else 12
    first, second = await wf.facility(), await wf.facility(district_code="310105")
    people = []
    for n in range(pairs):
        person = await wf.practitioner()
        await wf.certify(person["id"])
        if n % 2:
            # Half are already employed at one facility while being hired at another.
            assert (await wf.hire(person["id"], first)).status_code == 201
        people.append(person)

    async def pair(n: int, person: dict[str, object]) -> tuple[int, int]:
        hire = wf.hire(str(person["id"]), second)
        ban = wf.ban(str(person["raw_id_number"]), decision_ref=f"RACE-{n}")
        # Alternate who starts first, so both orders are exercised.
        if n % 4 < 2:
            hired, banned = await asyncio.gather(hire, ban)
        else:
            banned, hired = await asyncio.gather(ban, hire)
        return hired.status_code, banned.status_code

    outcomes = await asyncio.gather(*(pair(n, p) for n, p in enumerate(people)))

    assert all(banned == 201 for _, banned in outcomes), outcomes
    assert all(hired in (201, 409) for hired, _ in outcomes), outcomes
    assert await wf.table_count(Ban) == pairs
    assert await wf.table_count(Employment, Employment.status == "active") == 0
    # Every hire that won the race was ended by the ban that followed it, with reason `ban`.
    won = sum(1 for hired, _ in outcomes if hired == 201)
    ended_by_ban = await wf.table_count(Employment, Employment.end_reason == "ban")
    assert ended_by_ban == won + pairs // 2
    print("race outcomes (hire, ban):", Counter(outcomes))


async def _interleaved(
    wf: WorkforceStack, person: dict[str, object], facility: str, *, ban_first: bool
) -> None:
    """Hold one transaction open, uncommitted, right before its commit, and start the other; then
    commit the first. Without the per-person lock the second would not see the first."""
    maker = wf.workforce.state.sessionmaker
    workforce = wf.workforce.state.workforce
    police = Identity(client_id="police", kind=ClientKind.bureau, bureau="POLICE", scopes=["workforce:ban"])
    hire_body = EmploymentCreate(
        practitioner_id=str(person["id"]),
        facility_id=facility,
        role="childcare_worker",
        start_date=date.today(),
    )
    ban_body = BanCreate(
        id_number=str(person["raw_id_number"]),
        name="张三",
        reason="虐童",
        decision_ref=f"HELD-{person['id']}",
        role="abuser",
    )

    async def hire(session: AsyncSession) -> object:
        return await hiring.hire(session=session, workforce=workforce, caller=CITY, data=hire_body)

    async def ban(session: AsyncSession) -> object:
        return await bans.issue_ban_from_request(
            session=session, workforce=workforce, caller=police, data=ban_body
        )

    first, second = (ban, hire) if ban_first else (hire, ban)
    async with session_scope(maker) as held:
        await first(held)

        async def other() -> None:
            async with session_scope(maker) as session:
                await second(session)

        racing = asyncio.create_task(other())
        await asyncio.sleep(0.3)  # the other transaction runs as far as it can while this one is open
    await racing


async def test_held_transactions_in_both_orders_never_leave_a_banned_person_employed(
    wf: WorkforceStack,
) -> None:
    facility = await wf.facility()
    people = []
    for _ in range(6):
        person = await wf.practitioner()
        await wf.certify(person["id"])
        people.append(person)
    await asyncio.gather(
        *(_interleaved(wf, person, facility, ban_first=bool(n % 2)) for n, person in enumerate(people))
    )
    assert await wf.table_count(Ban) == len(people)
    assert await wf.table_count(Employment, Employment.status == "active") == 0
    # Hire first: hired, then ended by the ban. Ban first: the hire was refused and recorded.
    assert await wf.table_count(Employment, Employment.end_reason == "ban") == 3
    assert await wf.table_count(HireAttempt, HireAttempt.reason == "ban") == 3
