"""The tallies of migration guidance_0006 always equal a count of what they tally, whatever writes it:
the families' yearly tallies written by the service's own functions (attendance marked and
corrected, pushes, a family's need changed) and changed or deleted row by row; newborn families in
need, and those visited, after visits recorded, moved to another family or day, and deleted, and
families edited and deleted. `figures()` then answers what the direct queries answer."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.guidance.models import (
    Family,
    FamilyTally,
    FamilyYear,
    FamilyYearTally,
    HomeVisit,
    Resource,
    ResourcePush,
    Town,
)
from services.guidance.service.figures import figures
from services.guidance.service.tallies import count_attendance, count_push, set_in_need
from shared.db import make_engine
from tests.guidance.test_family_tally import family
from tests.support import DatabaseFactory

YEAR = 2025


def visit(family_id: str, district_code: str, on: date) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "family_id": family_id,
        "district_code": district_code,
        "visited_on": on,
        "visitor": "社区医生",
        "topics": ["newborn_visit"],
        "notes": "",
        "recorded_by": "test",
        "recorded_at": datetime.now(UTC),
    }


def resource(published_at: datetime) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "kind": "article",
        "title": "t",
        "summary": "",
        "url": None,
        "age_from_months": 0,
        "age_to_months": 36,
        "topics": [],
        "audience": "parents",
        "published_at": published_at,
        "published_by": "test",
        "pushed_families": 0,
        "version": 1,
    }


async def direct_year_counts(
    connection: AsyncConnection, year: int, target: int
) -> dict[str, tuple[int, int]]:
    rows = await connection.execute(
        select(
            FamilyYear.district_code,
            func.sum(case((FamilyYear.sessions_attended >= target, 1), else_=0)),
            func.sum(case((FamilyYear.pushed, 1), else_=0)),
        )
        .where(
            FamilyYear.year == year,
            FamilyYear.in_need.is_(True),
            FamilyYear.registered_on <= date(year, 12, 31),
        )
        .group_by(FamilyYear.district_code)
    )
    return {code: (int(offline), int(online)) for code, offline, online in rows.all()}


async def direct_newborn_counts(connection: AsyncConnection, year: int) -> dict[str, tuple[int, int]]:
    visited_ids = select(HomeVisit.family_id).where(HomeVisit.visited_on >= date(year, 1, 1))
    rows = await connection.execute(
        select(Family.district_code, func.count(), func.count().filter(Family.id.in_(visited_ids)))
        .where(
            Family.newborn.is_(True),
            Family.in_need.is_(True),
            Family.registered_on >= date(year, 1, 1),
            Family.registered_on <= date(year, 12, 31),
        )
        .group_by(Family.district_code)
    )
    return {code: (n, int(visited)) for code, n, visited in rows.all()}


async def tallied_newborn(connection: AsyncConnection, year: int) -> dict[str, tuple[int, int]]:
    return {
        t.district_code: (t.newborn_in_need, t.newborn_in_need_visited)
        for t in (
            await connection.execute(select(FamilyTally).where(FamilyTally.registered_year == year))
        ).all()
        if t.newborn_in_need or t.newborn_in_need_visited
    }


async def test_the_tallies_equal_a_count_of_what_they_tally(databases: DatabaseFactory) -> None:
    engine = make_engine(await databases.fresh("guidance"))
    try:
        async with engine.begin() as connection:
            towns = (await connection.execute(select(Town.code, Town.district_code).limit(40))).all()
            assert len({t.district_code for t in towns}) >= 2
            rows = [
                {
                    **family(
                        towns[n % len(towns)],
                        # Registered last year, this year and (a few) the next, so some of this
                        # year's tallies belong to families registered after its end.
                        date(YEAR - 1 + n % 3 // 2 + (n % 7 == 0), 1 + n % 12, 1 + n % 28),
                        handbook=False,
                        need=n % 5 != 0,
                    ),
                    "newborn": n % 3 == 0,
                }
                for n in range(240)
            ]
            await connection.execute(insert(Family), rows)  # one statement, many rows
            ids = [str(r["id"]) for r in rows]
            by_id = {str(r["id"]): r for r in rows}
            # Visits in one statement: some before the registration year (they do not count), some in
            # the following January (they do), several for one family.
            visits = [
                visit(
                    ids[n],
                    str(by_id[ids[n]]["district_code"]),
                    date(by_id[ids[n]]["registered_on"].year + (n % 4) - 1, 1 + n % 12, 1),  # type: ignore[attr-defined]
                )
                for n in range(0, 240, 2)
            ]
            visits += [
                visit(ids[n], str(by_id[ids[n]]["district_code"]), date(YEAR, 6, 1)) for n in range(0, 60, 3)
            ]
            await connection.execute(insert(HomeVisit), visits)
            published = [
                resource(datetime(YEAR, 3, 1, tzinfo=UTC)),
                resource(datetime(YEAR, 9, 1, tzinfo=UTC)),
            ]
            await connection.execute(insert(Resource), published)

        # Through the service's functions, each in its own transaction as a request would.
        async with AsyncSession(engine) as session, session.begin():
            await count_attendance(session=session, marked=[(i, YEAR) for i in ids[:150]], attended=True)
            await count_attendance(
                session=session, marked=[(i, YEAR - 1) for i in ids[100:200]], attended=True
            )
        for repeat in range(7):  # families 0–59 reach 8 sessions, 60–89 reach 4; 0–9 past the cap
            async with AsyncSession(engine) as session, session.begin():
                await count_attendance(
                    session=session,
                    marked=[(i, YEAR) for i in ids[: 60 if repeat > 2 else 90]],
                    attended=True,
                )
        async with AsyncSession(engine) as session, session.begin():
            for _ in range(70):
                await count_attendance(session=session, marked=[(i, YEAR) for i in ids[:10]], attended=True)
        async with AsyncSession(engine) as session, session.begin():  # corrections: marks taken back
            await count_attendance(session=session, marked=[(i, YEAR) for i in ids[50:70]], attended=False)
        for n, pushed in enumerate(published):
            async with AsyncSession(engine) as session, session.begin():
                await session.execute(
                    insert(ResourcePush),
                    [
                        {"resource_id": pushed["id"], "family_id": i, "pushed_at": pushed["published_at"]}
                        for i in ids[n * 80 : n * 80 + 160]
                    ],
                )
                await count_push(session=session, resource_id=str(pushed["id"]))
        for family_id, need in ((ids[3], False), (ids[5], True), (ids[0], False), (ids[0], True)):
            async with AsyncSession(engine) as session, session.begin():
                await session.execute(update(Family).where(Family.id == family_id).values(in_need=need))
                await set_in_need(session=session, family_id=family_id, in_need=need)

        # Row by row, as a repair or a migration would.
        async with engine.begin() as connection:
            await connection.execute(
                update(FamilyYear)
                .where(FamilyYear.family_id.in_(ids[20:30]))
                .values(registered_on=date(YEAR + 1, 2, 1))
            )
            await connection.execute(
                update(FamilyYear)
                .where(FamilyYear.family_id.in_(ids[30:35]))
                .values(district_code=towns[0][1])
            )
            await connection.execute(
                update(FamilyYear)
                .where(FamilyYear.family_id.in_(ids[100:105]), FamilyYear.year == YEAR - 1)
                .values(year=YEAR - 2)
            )
            await connection.execute(delete(FamilyYear).where(FamilyYear.family_id.in_(ids[40:45])))
            # Visits moved to another family and to another day, and deleted.
            await connection.execute(
                update(HomeVisit).where(HomeVisit.id == visits[0]["id"]).values(family_id=ids[9])
            )
            await connection.execute(
                update(HomeVisit)
                .where(HomeVisit.id == visits[3]["id"])
                .values(visited_on=date(YEAR - 3, 1, 1))
            )
            await connection.execute(
                update(HomeVisit)
                .where(HomeVisit.id == visits[5]["id"])
                .values(visited_on=date(YEAR + 1, 1, 5))
            )
            await connection.execute(
                delete(HomeVisit).where(HomeVisit.id.in_([v["id"] for v in visits[6:40:3]]))
            )
        # Visits of four newborn families in need no other change touches: moved between them, to
        # before the year and to the following January, and deleted.
        async with engine.begin() as connection:
            cohort = [
                {**family(towns[0], date(YEAR, 3, 1), handbook=False, need=True), "newborn": True}
                for _ in range(4)
            ]
            await connection.execute(insert(Family), cohort)
            f1, f2, f3, f4 = (str(f["id"]) for f in cohort)
            v1, v2, v3, v4, v5 = (
                visit(f, towns[0][1], on)
                for f, on in (
                    (f1, date(YEAR, 4, 1)),
                    (f2, date(YEAR - 1, 12, 31)),  # before the registration year: not counted
                    (f3, date(YEAR, 5, 1)),
                    (f4, date(YEAR, 5, 1)),
                    (f4, date(YEAR, 6, 1)),
                )
            )
            for row in (v1, v2, v3, v4, v5):
                await connection.execute(insert(HomeVisit).values(row))
            assert await direct_newborn_counts(connection, YEAR) == await tallied_newborn(connection, YEAR)
            await connection.execute(update(HomeVisit).where(HomeVisit.id == v1["id"]).values(family_id=f2))
            await connection.execute(
                update(HomeVisit).where(HomeVisit.id == v2["id"]).values(visited_on=date(YEAR + 1, 1, 10))
            )
            await connection.execute(
                update(HomeVisit).where(HomeVisit.id == v3["id"]).values(visited_on=date(YEAR - 1, 6, 1))
            )
            await connection.execute(delete(HomeVisit).where(HomeVisit.id == v5["id"]))
            await connection.execute(update(HomeVisit).where(HomeVisit.id == v4["id"]).values(family_id=f1))
            visited = select(HomeVisit.family_id).where(HomeVisit.visited_on >= date(YEAR, 1, 1))
            assert set((await connection.execute(visited)).scalars()) >= {f1, f2}
            assert not {f3, f4} & set((await connection.execute(visited)).scalars())

        async with engine.begin() as connection:
            # Families: a newborn flag dropped and raised, moved to another year and district, deleted.
            await connection.execute(update(Family).where(Family.id.in_(ids[0:12:3])).values(newborn=False))
            await connection.execute(update(Family).where(Family.id.in_(ids[1:13:3])).values(newborn=True))
            other = next(t for t in towns if t.district_code != by_id[ids[6]]["district_code"])
            await connection.execute(
                update(Family)
                .where(Family.id == ids[6])
                .values(
                    district_code=other.district_code, town_code=other.code, registered_on=date(YEAR, 12, 30)
                )
            )
            gone = ids[210:230]
            await connection.execute(delete(HomeVisit).where(HomeVisit.family_id.in_(gone)))
            await connection.execute(delete(FamilyYear).where(FamilyYear.family_id.in_(gone)))
            await connection.execute(delete(ResourcePush).where(ResourcePush.family_id.in_(gone)))
            await connection.execute(delete(Family).where(Family.id.in_(gone)))

        async with engine.connect() as connection:
            for year in (YEAR - 2, YEAR - 1, YEAR, YEAR + 1):
                direct = await direct_year_counts(connection, year, 1)
                histogram = {
                    (t.district_code, t.pushed, t.sessions_attended): t.families
                    for t in (
                        await connection.execute(select(FamilyYearTally).where(FamilyYearTally.year == year))
                    ).all()
                    if t.families
                }
                assert {  # every family counted once: sessions ≥ 1 or pushed
                    code: (
                        sum(n for (c, _, s), n in histogram.items() if c == code and s >= 1),
                        sum(n for (c, p, _), n in histogram.items() if c == code and p),
                    )
                    for code in {c for c, _, _ in histogram}
                } == {code: counts for code, counts in direct.items() if any(counts)}
                counted = await connection.execute(
                    select(func.count()).where(
                        FamilyYear.year == year,
                        FamilyYear.in_need,
                        FamilyYear.registered_on <= date(year, 12, 31),
                    )
                )
                assert sum(histogram.values()) == counted.scalar_one()
                assert await tallied_newborn(connection, year) == await direct_newborn_counts(
                    connection, year
                )
            assert (
                max(h for (h,) in (await connection.execute(select(FamilyYearTally.sessions_attended))).all())
                == 64
            )

        async with AsyncSession(engine) as session:
            for target in (1, 6, 8, 64, 65):  # 65: past the histogram, counted from the rows themselves
                answer = await figures(session=session, year=YEAR, target=target)
                async with engine.connect() as connection:
                    direct = await direct_year_counts(connection, YEAR, target)
                    newborn = await direct_newborn_counts(connection, YEAR)
                assert answer.city.families_in_need_offline_target_met == sum(o for o, _ in direct.values())
                assert answer.city.families_in_need_reached_online == sum(p for _, p in direct.values())
                assert answer.city.newborn_families == sum(n for n, _ in newborn.values())
                assert answer.city.newborn_families_visited == sum(v for _, v in newborn.values())
                for row in answer.districts:
                    assert (row.families_in_need_offline_target_met, row.families_in_need_reached_online) == (
                        direct.get(row.code, (0, 0))
                    )
                    assert (row.newborn_families, row.newborn_families_visited) == newborn.get(
                        row.code, (0, 0)
                    )
            assert answer.city.families_in_need_offline_target_met > 0  # some families are past the cap
            assert (
                0
                < (
                    await figures(session=session, year=YEAR, target=8)
                ).city.families_in_need_offline_target_met
            )
    finally:
        await engine.dispose()
