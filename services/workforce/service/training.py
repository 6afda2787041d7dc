"""Training hours per year: ≥ 72 h skills and ≥ 40 h ethics by default (DOMAIN.md)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.events import TrainingRecorded
from services.workforce.models import Employment, FacilityProjection, Practitioner, Training
from services.workforce.schemas import TrainingCompliance, TrainingCreate, TrainingRead, TrainingTotals
from services.workforce.service.common import Workforce, visible_facilities
from shared.clock import new_id, shanghai_today, utcnow
from shared.errors import invalid
from shared.events.outbox import emit
from shared.identity import Identity
from shared.pagination import PageParams, encode_cursor


def training_read(training: Training) -> TrainingRead:
    return TrainingRead(
        id=training.id,
        practitioner_id=training.practitioner_id,
        category=training.category,
        hours=training.hours,
        date=training.trained_on,
        provider=training.provider,
    )


async def record_training(
    *, session: AsyncSession, caller: Identity, practitioner: Practitioner, data: TrainingCreate
) -> TrainingRead:
    if data.date > shanghai_today():
        raise invalid("date", "is in the future; record training once it has happened")
    training = Training(
        id=new_id(),
        practitioner_id=practitioner.id,
        category=data.category.value,
        hours=data.hours,
        trained_on=data.date,
        provider=data.provider,
        recorded_by=caller.client_id,
        created_at=utcnow(),
    )
    session.add(training)
    await session.flush()
    await emit(
        session,
        TrainingRecorded(
            training_id=training.id,
            practitioner_id=practitioner.id,
            category=training.category,
            hours=training.hours,
            trained_on=training.trained_on,
        ),
    )
    return training_read(training)


def _year_bounds(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year, 12, 31)


def _totals_query(year: int) -> Select[tuple[str, float, float, float]]:
    first, last = _year_bounds(year)

    def hours_of(category: str) -> ColumnElement[float]:
        return func.coalesce(func.sum(case((Training.category == category, Training.hours), else_=0.0)), 0.0)

    return (
        select(
            Training.practitioner_id,
            hours_of("skills").label("skills"),
            hours_of("ethics").label("ethics"),
            hours_of("other").label("other"),
        )
        .where(Training.trained_on >= first, Training.trained_on <= last)
        .group_by(Training.practitioner_id)
    )


def _totals(
    workforce: Workforce, practitioner_id: str, year: int, skills: float, ethics: float, other: float
) -> TrainingTotals:
    s = workforce.settings
    return TrainingTotals(
        practitioner_id=practitioner_id,
        year=year,
        skills_hours=round(float(skills), 2),
        ethics_hours=round(float(ethics), 2),
        other_hours=round(float(other), 2),
        meets=float(skills) >= s.training_skills_hours and float(ethics) >= s.training_ethics_hours,
    )


async def practitioner_totals(
    *, session: AsyncSession, workforce: Workforce, practitioner: Practitioner, year: int
) -> tuple[TrainingTotals, list[TrainingRead]]:
    first, last = _year_bounds(year)
    rows = (
        (
            await session.execute(
                select(Training)
                .where(
                    Training.practitioner_id == practitioner.id,
                    Training.trained_on >= first,
                    Training.trained_on <= last,
                )
                .order_by(Training.trained_on, Training.id)
            )
        )
        .scalars()
        .all()
    )
    hours = {"skills": 0.0, "ethics": 0.0, "other": 0.0}
    for row in rows:
        hours[row.category] += row.hours
    totals = _totals(workforce, practitioner.id, year, hours["skills"], hours["ethics"], hours["other"])
    return totals, [training_read(r) for r in rows]


async def compliance(
    *,
    session: AsyncSession,
    workforce: Workforce,
    caller: Identity,
    year: int,
    facility: FacilityProjection | None,
    page: PageParams,
) -> TrainingCompliance:
    """Who, among the people employed at some time in `year` (at one facility, or wherever the
    caller may see), met both yearly minimums."""
    first, last = _year_bounds(year)
    employed = (
        select(Employment.practitioner_id)
        .join(FacilityProjection, FacilityProjection.facility_id == Employment.facility_id)
        .where(
            Employment.start_date <= last,
            or_(Employment.end_date.is_(None), Employment.end_date >= first),
            visible_facilities(caller),
        )
        .distinct()
    )
    if facility is not None:
        employed = employed.where(Employment.facility_id == facility.facility_id)
    population = employed.subquery()
    totals = _totals_query(year).subquery()
    rows = (
        await session.execute(
            select(population.c.practitioner_id, totals.c.skills, totals.c.ethics, totals.c.other)
            .outerjoin(totals, and_(totals.c.practitioner_id == population.c.practitioner_id))
            .order_by(population.c.practitioner_id)
        )
    ).all()
    everyone = [
        _totals(workforce, pid, year, skills or 0.0, ethics or 0.0, other or 0.0)
        for pid, skills, ethics, other in rows
    ]
    after = str(page.after[0]) if page.after else None
    window = [t for t in everyone if after is None or t.practitioner_id > after][: page.limit + 1]
    has_more = len(window) > page.limit
    window = window[: page.limit]
    return TrainingCompliance(
        year=year,
        facility_id=facility.facility_id if facility else None,
        required_skills_hours=workforce.settings.training_skills_hours,
        required_ethics_hours=workforce.settings.training_ethics_hours,
        practitioners=len(everyone),
        meeting=sum(1 for t in everyone if t.meets),
        items=window,
        next_cursor=encode_cursor([window[-1].practitioner_id]) if has_more and window else None,
    )
