"""The families' yearly tallies behind the figures (sessions attended, resources pushed) always say
what the raw rows say: attendance marked twice (one after the other or at the same moment) counts
once, a correction takes it back, two pushes to a family in a year reach it once, a family's
`in_need` edit moves it in or out, and the migration fills the tallies from the rows already there.
Each time the figures are checked against a plain recount of the bookings and pushes."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from cradle.migrations import downgrade, upgrade
from cradle.seed.guidance import seed_guidance
from services.guidance.models import Booking, Family, FamilyYear, ResourcePush
from services.guidance.service.common import Guidance
from services.guidance.service.figures import figures
from shared.clock import shanghai_today
from shared.db import make_engine
from tests.guidance.conftest import HUANGPU, HUANGPU_TOWN, XUHUI, Guide, guidance_settings
from tests.support import DatabaseFactory

TARGET = 6  # the service's default offline_sessions_target


def utc_year(moment: datetime) -> int:
    # SQLite hands back naive UTC, PostgreSQL aware datetimes.
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)).year


async def recount(
    connection: AsyncConnection, year: int, target: int = TARGET
) -> dict[str, tuple[int, int, int]]:
    """Per district, from the raw rows: (families in need registered by the year's end, those
    with ≥ target sessions attended in the year, those pushed a resource in the year)."""
    families = (
        await connection.execute(
            select(Family.id, Family.district_code, Family.in_need, Family.registered_on)
        )
    ).all()
    attended = Counter(
        family_id
        for family_id, starts_at in await connection.execute(
            select(Booking.family_id, Booking.session_starts_at).where(Booking.attended.is_(True))
        )
        if utc_year(starts_at) == year
    )
    pushed = {
        family_id
        for family_id, pushed_at in await connection.execute(
            select(ResourcePush.family_id, ResourcePush.pushed_at)
        )
        if utc_year(pushed_at) == year
    }
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for family_id, district_code, in_need, registered_on in families:
        if in_need and registered_on <= date(year, 12, 31):
            row = counts[district_code]
            row[0] += 1
            row[1] += attended[family_id] >= target
            row[2] += family_id in pushed
    return {code: (a, b, c) for code, (a, b, c) in counts.items()}


async def reported(
    connection: AsyncConnection, year: int, target: int = TARGET
) -> dict[str, tuple[int, int, int]]:
    async with AsyncSession(bind=connection) as session:
        result = await figures(session=session, year=year, target=target)
    return {
        d.code: (d.families_in_need, d.families_in_need_offline_target_met, d.families_in_need_reached_online)
        for d in result.districts
        if d.families_in_need
    }


async def tallies(connection: AsyncConnection) -> set[tuple[Any, ...]]:
    return {
        tuple(row)
        for row in await connection.execute(
            select(
                FamilyYear.family_id,
                FamilyYear.year,
                FamilyYear.district_code,
                FamilyYear.registered_on,
                FamilyYear.in_need,
                FamilyYear.sessions_attended,
                FamilyYear.pushed,
            )
        )
    }


@pytest.mark.asyncio(loop_scope="module")
async def test_marks_twice_corrections_pushes_twice_and_need_edits_keep_the_figures_exact(
    guide: Guide,
) -> None:
    year = datetime.now(UTC).year
    regular = await guide.family()  # in need, Xuhui: six sessions, marked twice over
    occasional = await guide.family()  # in need: five, after a sixth mark is taken back
    joining = await guide.family(in_need=False)  # six sessions; in need only after the pushes
    leaving = await guide.family(guide.district(HUANGPU), town_code=HUANGPU_TOWN)  # six; then not in need
    organiser = guide.district(client_id="district-310104-tallies")
    start = datetime.now(UTC) + timedelta(hours=2)
    sessions = [
        await guide.session(organiser, starts_at=(start + timedelta(hours=n)).isoformat(), capacity=10)
        for n in range(6)
    ]
    everyone = [regular, occasional, joining, leaving]
    for s in sessions:
        for family in everyone:
            booked = await guide.book(s["id"], guide.bureau(), family_id=family["id"])
            assert booked.status_code == 201, booked.text

    async def mark(session_id: str, families: list[dict[str, Any]], attended: bool = True) -> None:
        body = {"family_ids": [f["id"] for f in families], "attended": attended}
        reply = await guide.direct.post(f"/v1/sessions/{session_id}/attendance", json=body, headers=organiser)
        assert reply.status_code == 200, reply.text

    came = [regular, joining, leaving]
    for s in sessions:
        await mark(s["id"], came + ([occasional] if s is not sessions[-1] else []))
    await mark(sessions[0]["id"], came)  # the same marks again
    await asyncio.gather(*(mark(sessions[1]["id"], came) for _ in range(3)))  # ... and all at once
    await mark(sessions[2]["id"], [regular], attended=False)  # a wrong mark taken back ...
    await mark(sessions[2]["id"], [regular])  # ... and put right
    await mark(sessions[-1]["id"], [occasional])  # occasional's sixth, marked by mistake ...
    await asyncio.gather(*(mark(sessions[-1]["id"], [occasional], attended=False) for _ in range(2)))

    # Resources for the same ages reach every family in need with a child of 8 months: one, then
    # two more at the same moment.
    async def publish(title: str) -> None:
        body = {"kind": "article", "title": title, "age_from_months": 6, "age_to_months": 12}
        published = await guide.direct.post("/v1/resources", json=body, headers=guide.bureau())
        assert published.status_code == 201 and published.json()["pushed_families"] == 3

    await publish("辅食添加指南")
    await asyncio.gather(publish("婴幼儿睡眠"), publish("语言发展小游戏"))
    for family, in_need, district in ((joining, True, XUHUI), (leaving, False, HUANGPU)):
        edited = await guide.direct.patch(
            f"/v1/families/{family['id']}", json={"in_need": in_need}, headers=guide.district(district)
        )
        assert edited.status_code == 200, edited.text

    engine = guide.app.state.engine
    async with engine.connect() as connection:
        expected = await recount(connection, year)
        assert await reported(connection, year) == expected
        for target in (1, 5, 7):
            assert await reported(connection, year, target) == await recount(connection, year, target)
        assert await reported(connection, year - 1) == await recount(connection, year - 1) == {}
    # Xuhui: three families in need now; regular and joining came six times (occasional five);
    # regular and occasional were reached (three times each), joining was not in need then.
    assert expected == {XUHUI: (3, 2, 2)}
    figures_now = (await guide.direct.get("/v1/guidance/figures", headers=guide.bureau())).json()
    xuhui = next(d for d in figures_now["districts"] if d["code"] == XUHUI)
    assert (xuhui["families_in_need_offline_target_met"], xuhui["families_in_need_reached_online"]) == (2, 2)


async def test_the_seeded_tallies_and_the_migrations_backfill_match_a_recount(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    settings = guidance_settings(
        url=await databases.fresh("guidance"), nats_url="", namespace="demo", keys=keys
    )
    engine = make_engine(settings.database_url)
    this_year = shanghai_today().year
    try:
        report = await seed_guidance(engine, guidance=Guidance.from_settings(settings), families=600, seed=11)
        assert report.bookings > 0 and report.pushes > 0
        async with engine.connect() as connection:
            seeded = await tallies(connection)
            # Last year is whole (some families met the target); this one is under way.
            expected = await recount(connection, this_year - 1)
            assert any(met for _, met, _ in expected.values())
            assert await reported(connection, this_year - 1) == expected
            assert await reported(connection, this_year) == await recount(connection, this_year)
        # Rebuilt by the migration from the bookings and pushes alone: the same rows.
        await asyncio.to_thread(downgrade, "guidance", settings.database_url, "guidance_0002")
        await asyncio.to_thread(upgrade, "guidance", settings.database_url)
        await engine.dispose()
        async with engine.connect() as connection:
            assert await tallies(connection) == seeded
            for year in (this_year - 1, this_year):
                assert await reported(connection, year) == await recount(connection, year)
    finally:
        await engine.dispose()
