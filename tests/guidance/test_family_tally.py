"""The families' tallies (migration guidance_0004) always equal a count of the families themselves,
whatever writes them: rows inserted many to a statement (PostgreSQL counts them per statement),
one at a time, edited (handbook, need, district, registration year) and deleted."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import case, delete, func, insert, select, update

from services.guidance.models import Family, FamilyTally, Town
from shared.db import make_engine
from tests.support import DatabaseFactory


def family(town: tuple[str, str], on: date, *, handbook: bool, need: bool) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "id": str(uuid.uuid4()),
        "district_code": town[1],
        "town_code": town[0],
        "in_need": need,
        "newborn": False,
        "grandparent_carers": False,
        "has_handbook": handbook,
        "registered_on": on,
        "registered_at": now,
        "registered_by": "test",
        "registered_via": "station",
        "version": 1,
        "updated_at": now,
    }


async def test_the_tallies_equal_a_count_of_the_families(databases: DatabaseFactory) -> None:
    engine = make_engine(await databases.fresh("guidance"))
    try:
        async with engine.begin() as connection:
            towns = (await connection.execute(select(Town.code, Town.district_code).limit(40))).all()
            districts = sorted({t.district_code for t in towns})
            assert len(districts) >= 2
            rows = [
                family(
                    towns[n % len(towns)],
                    date(2025 + n % 2, 1 + n % 12, 1),
                    handbook=n % 3 == 0,
                    need=n % 4 == 0,
                )
                for n in range(300)
            ]
            await connection.execute(insert(Family), rows)  # one statement, many rows
        async with engine.begin() as connection:
            await connection.execute(
                insert(Family).values(family(towns[0], date(2026, 12, 31), handbook=True, need=True))
            )
            await connection.execute(
                update(Family).where(Family.id.in_([r["id"] for r in rows[:40]])).values(has_handbook=True)
            )
            await connection.execute(
                update(Family).where(Family.id.in_([r["id"] for r in rows[40:60]])).values(in_need=False)
            )
            other = next(t for t in towns if t.district_code != rows[60]["district_code"])
            await connection.execute(
                update(Family)
                .where(Family.id == rows[60]["id"])
                .values(
                    district_code=other.district_code, town_code=other.code, registered_on=date(2024, 5, 1)
                )
            )
            await connection.execute(delete(Family).where(Family.id.in_([r["id"] for r in rows[61:70]])))

        async with engine.connect() as connection:
            year = func.cast(func.extract("year", Family.registered_on), FamilyTally.registered_year.type)
            counted = {
                (code, int(y)): (n, int(h), int(i))
                for code, y, n, h, i in (
                    await connection.execute(
                        select(
                            Family.district_code,
                            year,
                            func.count(),
                            func.sum(case((Family.has_handbook, 1), else_=0)),
                            func.sum(case((Family.in_need, 1), else_=0)),
                        ).group_by(Family.district_code, year)
                    )
                ).all()
            }
            tallied = {
                (t.district_code, t.registered_year): (t.families, t.with_handbook, t.in_need)
                for t in (await connection.execute(select(FamilyTally))).all()
                if t.families  # a district and year emptied by a move or a delete keeps its row at 0
            }
        assert sum(n for n, _, _ in counted.values()) == 300 + 1 - 9
        assert tallied == counted
    finally:
        await engine.dispose()
