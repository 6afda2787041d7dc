"""`cradle seed-demo`'s health and quality records: every approved facility's entry health checks,
HEALTH's yearly results (a failed one re-assessed), graded commissioned assessments, events waiting
in the outbox; a second run adds nothing."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from cradle.seed.health import MONTHS, seed_health
from cradle.seed.registry import seed_facilities
from services.registry.models import Assessment, EntryHealthCheck, Facility, HealthAssessment, outbox
from shared.db import make_engine
from tests.support import DatabaseFactory


async def test_the_seeded_city_has_health_and_quality_records(databases: DatabaseFactory) -> None:
    url = await databases.fresh("registry")
    engine = make_engine(url)
    try:
        await seed_facilities(engine, count=120, seed=11)
        report = await seed_health(engine, namespace="demo", seed=11)
        async with engine.connect() as connection:
            approved = (
                await connection.execute(
                    select(func.count()).select_from(Facility).where(Facility.status == "approved")
                )
            ).scalar_one()
            checks = (await connection.execute(select(EntryHealthCheck.__table__))).all()
            results = (await connection.execute(select(HealthAssessment.__table__))).all()
            graded = (
                await connection.execute(
                    select(Assessment.__table__).where(Assessment.dimension_grades.is_not(None))
                )
            ).all()
            payloads = (await connection.execute(select(outbox.c.payload))).scalars().all()
        assert approved > 0 and len(checks) == report.reports == approved * MONTHS
        assert all(0 <= c.children_checked <= c.children_enrolled for c in checks)
        assert sum(c.children_checked for c in checks) >= 0.9 * sum(c.children_enrolled for c in checks)
        assert len(results) == report.assessments >= approved
        assert {r.result for r in results} <= {"qualified", "basically_qualified", "unqualified"}
        assert len(graded) == report.quality and all(g.framework_version == 1 for g in graded)
        assert all(len(g.dimension_grades) == 7 for g in graded)
        assert [json.loads(p)["type"] for p in payloads].count(
            "cradle.registry.entry_health_check.reported"
        ) == len(checks)
        assert [json.loads(p)["type"] for p in payloads].count(
            "cradle.registry.health_assessment.recorded"
        ) == len(results)

        again = await seed_health(engine, namespace="demo", seed=11)
        assert (again.reports, again.assessments, again.quality) == (0, 0, 0)
    finally:
        await engine.dispose()
