"""Demo health and quality records for `cradle seed-demo`: every approved facility reports entry
health checks (入托体检) for the last three months, nearly every enrolled child checked; HEALTH's
卫生保健 results for last year and this one (mostly 合格, some 基本合格, a few 不合格, and now and then
a re-assessment that supersedes a failed one); about one facility in eight has a commissioned
quality assessment graded on every dimension of the framework in force. Recorded through the
registry's own functions, so rules, versions and events are the real ones. Facilities that already
have health records are left as they are; deterministic for a seed."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from cradle.seed.approved import approved_without, in_batches, registry_sessions
from services.registry.models import EntryHealthCheck
from services.registry.schemas import (
    AssessmentCreate,
    AssessmentMethod,
    EntryHealthCheckReport,
    HealthAssessmentCreate,
    HealthAssessmentResult,
)
from services.registry.service import health, quality
from shared.identity import ClientKind, Identity

MONTHS = 3
COMMISSIONED_ONE_IN = 8
HEALTH = Identity(
    client_id="seed-health", kind=ClientKind.bureau, bureau="HEALTH", scopes=["registry:review"]
)
GRADES = ("A", "B", "B", "C", "D")


@dataclass
class HealthReport:
    reports: int = 0
    assessments: int = 0
    quality: int = 0


def _months(today: date) -> list[str]:
    months, day = [], today.replace(day=1)
    for _ in range(MONTHS):
        day = (day - timedelta(days=1)).replace(day=1)
        months.append(f"{day.year}-{day.month:02d}")
    return sorted(months)


def _result(rng: random.Random) -> HealthAssessmentResult:
    draw = rng.random()
    if draw < 0.8:
        return HealthAssessmentResult.qualified
    return HealthAssessmentResult.basically_qualified if draw < 0.95 else HealthAssessmentResult.unqualified


async def seed_health(engine: AsyncEngine, *, namespace: str, seed: int = 2026) -> HealthReport:
    rng = random.Random(f"health:{seed}")
    maker = registry_sessions(engine, namespace)
    report = HealthReport()
    today = date.today()
    async with maker() as session:
        ids = await approved_without(session, EntryHealthCheck.facility_id)
        framework = await quality.current_framework(session=session)
    codes = [str(d["code"]) for d in framework.dimensions] if framework else []
    async for session, batch in in_batches(maker, ids):
        for facility in batch:
            operator = Identity(
                client_id=facility.owner_client_id or "seed-operator",
                kind=ClientKind.operator,
                scopes=["registry:write"],
            )
            enrolled = facility.enrolled_infant + facility.enrolled_toddler + facility.enrolled_preschool
            for month in _months(today):
                children = max(0, enrolled + rng.randint(-2, 2))
                missing = min(children, rng.choice((0, 0, 0, 1, 2)))
                await health.report_entry_checks(
                    session=session,
                    caller=operator,
                    facility=facility,
                    data=EntryHealthCheckReport(
                        month=month, children_enrolled=children, children_checked=children - missing
                    ),
                )
                report.reports += 1
            for year in (today.year - 1, today.year):
                assessed_on = date(year, rng.randint(3, 10), rng.randint(1, 28))
                if assessed_on > today:
                    continue
                result = _result(rng)
                notes = {"unqualified": "晨午检记录不全，消毒登记缺失，限期整改"}.get(result.value, "")
                await health.record_health_assessment(
                    session=session,
                    caller=HEALTH,
                    facility=facility,
                    data=HealthAssessmentCreate(
                        year=year, result=result, assessed_on=assessed_on, notes=notes
                    ),
                )
                report.assessments += 1
                if result == HealthAssessmentResult.unqualified and assessed_on + timedelta(days=60) <= today:
                    await health.record_health_assessment(
                        session=session,
                        caller=HEALTH,
                        facility=facility,
                        data=HealthAssessmentCreate(
                            year=year,
                            result=HealthAssessmentResult.qualified,
                            assessed_on=assessed_on + timedelta(days=60),
                            notes="整改后复评合格",
                        ),
                    )
                    report.assessments += 1
            if codes and rng.randrange(COMMISSIONED_ONE_IN) == 0:
                grades = {code: rng.choice(GRADES[:4]) for code in codes}
                overall = sorted(grades.values())[len(grades) // 2]  # the median dimension's grade
                await quality.record_assessment(
                    session=session,
                    caller=HEALTH,
                    facility=facility,
                    data=AssessmentCreate(
                        method=AssessmentMethod.commissioned,
                        scores={"overall": float(rng.randint(60, 98))},
                        grade=overall,
                        assessed_on=today - timedelta(days=rng.randint(10, 300)),
                        assessor="上海市托育服务质量评估中心",
                        dimension_grades=grades,
                    ),
                )
                report.quality += 1
    return report
