"""Inspectors and the monthly 双随机 plans of a district (the draw itself is in draw.py). A plan
stores its seed and everything the draw saw, so `verify` can re-run it and compare."""

from __future__ import annotations

import math
import secrets
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.config import MonitoringSettings
from services.monitoring.errors import (
    AlreadyDecided,
    InspectorNotFound,
    NotEnoughInspectors,
    NothingToDraw,
    PlanNotFound,
)
from services.monitoring.events import InspectionPlanDrawn
from services.monitoring.models import Facility, Inspection, InspectionPlan, Inspector
from services.monitoring.schemas import (
    Coverage,
    DrawnPair,
    InspectorCreate,
    InspectorRead,
    InspectorUpdate,
    PlanCreate,
    PlanRead,
    PlanVerification,
)
from services.monitoring.service import draw as drawing
from services.monitoring.service import inspections as inspection_service
from services.monitoring.service import risk
from services.monitoring.service.access import reads_city, reads_district, require_supervisor
from shared.clock import as_utc, new_id
from shared.errors import Forbidden, invalid
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import ClientKind, Identity
from shared.pagination import Page, PageParams, make_page


async def add_inspector(
    *, session: AsyncSession, caller: Identity, data: InspectorCreate, now: datetime
) -> Inspector:
    require_supervisor(caller, data.district_code, "registers its inspectors")
    inspector = Inspector(
        id=new_id(), district_code=data.district_code, name=data.name, active=True, created_at=now
    )
    session.add(inspector)
    await session.flush()
    return inspector


async def get_inspector(*, session: AsyncSession, caller: Identity, inspector_id: str) -> Inspector:
    inspector = await session.get(Inspector, inspector_id, with_for_update=True)
    if inspector is None or not reads_district(caller, inspector.district_code):
        raise InspectorNotFound(
            tr(
                "No inspector {inspector_id} that you may see.",
                inspector_id=inspector_id,
            )
        )
    require_supervisor(caller, inspector.district_code, "manages its inspectors")
    return inspector


def _month_bounds(month: str) -> tuple[int, int]:
    year, number = (int(part) for part in month.split("-"))
    return year, number


async def _previous_plan(session: AsyncSession, district_code: str, month: str) -> InspectionPlan | None:
    """The district's draw in force for the latest month before this one (its last redraw)."""
    return (
        await session.execute(
            select(InspectionPlan)
            .where(InspectionPlan.district_code == district_code, InspectionPlan.month < month)
            .order_by(InspectionPlan.month.desc(), InspectionPlan.drawn_at.desc(), InspectionPlan.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def _current_plan(session: AsyncSession, district_code: str, month: str) -> InspectionPlan | None:
    return (
        await session.execute(
            select(InspectionPlan)
            .where(InspectionPlan.district_code == district_code, InspectionPlan.month == month)
            .order_by(InspectionPlan.drawn_at.desc(), InspectionPlan.id.desc())
            .limit(1)
            .with_for_update()
        )
    ).scalar_one_or_none()


def coverage_of(*, not_inspected: int, month: str, sample_size: int) -> Coverage:
    _, number = _month_bounds(month)
    remaining = 12 - number + 1
    needed = math.ceil(not_inspected / remaining) if not_inspected else 0
    enough = sample_size >= needed
    if not not_inspected:
        note = "Every facility of the district has had an on-site inspection this year."
    elif enough:
        note = (
            f"{not_inspected} facilities still need their on-site inspection this year; "
            f"{remaining} monthly draw(s) of {sample_size} can reach them all."
        )
    else:
        note = (
            f"{not_inspected} facilities still need their on-site inspection this year, but "
            f"{remaining} monthly draw(s) of {sample_size} reach at most {remaining * sample_size}: "
            f"draw at least {needed} a month (or inspect outside the draw) to reach them all."
        )
    return Coverage(
        not_inspected_this_year=not_inspected,
        remaining_months=remaining,
        enough=enough,
        needed_sample_size=needed,
        note=note,
    )


async def draw_plan(
    *, session: AsyncSession, caller: Identity, data: PlanCreate, settings: MonitoringSettings, now: datetime
) -> InspectionPlan:
    district = data.district_code
    require_supervisor(caller, district, "draws its inspection plans")
    if data.sample_size > settings.plan_max_sample_size:
        raise invalid("sample_size", f"is at most {settings.plan_max_sample_size}")
    today = risk.local_today(now, settings)
    if data.month < f"{today.year:04d}-{today.month:02d}":
        raise invalid("month", "is in the past: plans are drawn for this month or a later one")
    year, _ = _month_bounds(data.month)

    inspectors = list(
        (
            await session.execute(
                select(Inspector.id)
                .where(Inspector.district_code == district, Inspector.active)
                .order_by(Inspector.id)
            )
        ).scalars()
    )
    if len(inspectors) < drawing.PER_FACILITY:
        raise NotEnoughInspectors(
            f"District {district} has {len(inspectors)} active inspector(s); a 双随机 draw pairs two "
            "with each facility. Register more with POST /v1/inspectors."
        )
    scope = (Facility.district_code == district) & (Facility.status == "approved")
    risks = await risk.compute(session=session, scope=scope, settings=settings, now=now)
    if not risks:
        raise NothingToDraw(tr("District {district} has no approved facility to inspect.", district=district))

    replaced = await _current_plan(session, district, data.month)
    if replaced is not None:
        started = await session.execute(
            select(func.count())
            .select_from(Inspection)
            .where(Inspection.plan_id == replaced.id, Inspection.status == "completed")
        )
        if started.scalar_one():
            raise AlreadyDecided(
                f"The {data.month} plan {replaced.id} of district {district} has inspections with results; "
                "it can no longer be redrawn. Inspect outside the draw with POST /v1/inspections."
            )

    inspected = set(
        (
            await session.execute(
                select(Inspection.facility_id)
                .where(
                    Inspection.district_code == district,
                    Inspection.status == "completed",
                    Inspection.inspected_on >= date(year, 1, 1),
                    Inspection.inspected_on <= date(year, 12, 31),
                )
                .distinct()
            )
        ).scalars()
    )
    previous = await _previous_plan(session, district, data.month)
    exclusions: dict[str, list[str]] = {}
    if previous is not None:
        rows = await session.execute(
            select(Inspection.facility_id, Inspection.inspector_ids).where(
                Inspection.plan_id == previous.id, Inspection.status != "cancelled"
            )
        )
        exclusions = {row.facility_id: sorted(row.inspector_ids) for row in rows}

    candidates = [
        {
            "facility_id": r.facility_id,
            "risk_score": r.score,
            "inspected_this_year": r.facility_id in inspected,
            "tier": 1 if r.facility_id in inspected else 0,
            "weight": round(1 + r.score / settings.plan_risk_divisor, 4),
        }
        for r in risks  # already in facility id order
    ]
    candidate_ids = {c["facility_id"] for c in candidates}
    not_inspected = sum(1 for c in candidates if c["tier"] == 0)
    coverage = coverage_of(not_inspected=not_inspected, month=data.month, sample_size=data.sample_size)
    inputs: dict[str, object] = {
        "year": year,
        "sample_size": min(data.sample_size, len(candidates)),
        "risk_divisor": settings.plan_risk_divisor,
        "candidates": candidates,
        "inspectors": inspectors,
        "exclusions": {k: v for k, v in sorted(exclusions.items()) if k in candidate_ids},
        "previous_plan_id": previous.id if previous else None,
        "supersedes": replaced.id if replaced else None,
        "coverage": coverage.model_dump(),
    }
    seed = data.seed or secrets.token_hex(16)
    result = drawing.draw(inputs, seed)
    inputs["relaxed_exclusions"] = result.relaxed

    if replaced is not None:
        for old in (
            await session.execute(
                select(Inspection).where(Inspection.plan_id == replaced.id, Inspection.status == "planned")
            )
        ).scalars():
            old.status, old.version, old.updated_at = "cancelled", old.version + 1, now

    plan = InspectionPlan(
        id=new_id(),
        district_code=district,
        month=data.month,
        sample_size=data.sample_size,
        seed=seed,
        algorithm=drawing.ALGORITHM,
        inputs=inputs,
        drawn_by=caller.client_id,
        drawn_at=now,
    )
    session.add(plan)
    await session.flush()
    for facility_id, pair in result.pairs:
        session.add(
            Inspection(
                id=new_id(),
                plan_id=plan.id,
                facility_id=facility_id,
                district_code=district,
                inspector_ids=pair,
                status="planned",
                created_at=now,
                updated_at=now,
            )
        )
    await session.flush()
    await emit(
        session,
        InspectionPlanDrawn(
            plan_id=plan.id,
            district_code=district,
            month=data.month,
            seed=seed,
            facility_ids=[facility_id for facility_id, _ in result.pairs],
        ),
    )
    return plan


async def get_visible_plan(*, session: AsyncSession, caller: Identity, plan_id: str) -> InspectionPlan:
    plan = await session.get(InspectionPlan, plan_id)
    if plan is None or not reads_district(caller, plan.district_code):
        raise PlanNotFound(tr("No inspection plan {plan_id} that you may see.", plan_id=plan_id))
    return plan


async def _plan_inspections(session: AsyncSession, plan: InspectionPlan) -> list[Inspection]:
    return list(
        (
            await session.execute(
                select(Inspection).where(Inspection.plan_id == plan.id).order_by(Inspection.facility_id)
            )
        ).scalars()
    )


async def to_read(session: AsyncSession, plan: InspectionPlan) -> PlanRead:
    inspections = await _plan_inspections(session, plan)
    superseded_by = (
        await session.execute(
            select(InspectionPlan.id)
            .where(
                InspectionPlan.district_code == plan.district_code,
                InspectionPlan.month == plan.month,
                InspectionPlan.drawn_at > plan.drawn_at,
            )
            .order_by(InspectionPlan.drawn_at)
            .limit(1)
        )
    ).scalar_one_or_none()
    inputs = plan.inputs
    return PlanRead(
        id=plan.id,
        district_code=plan.district_code,
        month=plan.month,
        sample_size=plan.sample_size,
        drawn=len(inspections),
        seed=plan.seed,
        algorithm=plan.algorithm,
        drawn_by=plan.drawn_by,
        drawn_at=as_utc(plan.drawn_at),
        previous_plan_id=inputs.get("previous_plan_id"),  # type: ignore[arg-type]
        supersedes=inputs.get("supersedes"),  # type: ignore[arg-type]
        superseded_by=superseded_by,
        coverage=Coverage.model_validate(inputs["coverage"]),
        inputs=inputs,
        inspections=[inspection_service.to_read(i) for i in inspections],
    )


async def verify(*, session: AsyncSession, plan: InspectionPlan) -> PlanVerification:
    """Re-run the draw from the stored inputs and seed and compare it with what was stored."""
    stored = sorted(
        (
            DrawnPair(facility_id=i.facility_id, inspector_ids=sorted(i.inspector_ids))
            for i in await _plan_inspections(session, plan)
        ),
        key=lambda p: p.facility_id,
    )
    again = drawing.draw(plan.inputs, plan.seed) if plan.algorithm == drawing.ALGORITHM else None
    recomputed = sorted(
        (DrawnPair(facility_id=f, inspector_ids=pair) for f, pair in (again.pairs if again else [])),
        key=lambda p: p.facility_id,
    )
    return PlanVerification(
        plan_id=plan.id,
        algorithm=plan.algorithm,
        seed=plan.seed,
        matches=again is not None and stored == recomputed,
        stored=stored,
        recomputed=recomputed,
    )


def inspector_read(inspector: Inspector) -> InspectorRead:
    read = InspectorRead.model_validate(inspector, from_attributes=True)
    read.created_at = as_utc(read.created_at)
    return read


async def list_inspectors(
    *,
    session: AsyncSession,
    caller: Identity,
    paging: PageParams,
    district_code: str | None = None,
    active: bool | None = None,
) -> Page[InspectorRead]:
    """A district's own inspectors; a bureau's, any district's."""
    if caller.kind == ClientKind.district:
        district_code = district_code or caller.district_code
        if not reads_district(caller, district_code or ""):
            return Page[InspectorRead](items=[])
    elif not reads_city(caller):
        raise Forbidden("Inspectors are listed for districts and bureaus.")
    query = select(Inspector).order_by(Inspector.id).limit(paging.limit + 1)
    if district_code is not None:
        query = query.where(Inspector.district_code == district_code)
    if active is not None:
        query = query.where(Inspector.active == active)
    if paging.after:
        query = query.where(Inspector.id > str(paging.after[0]))
    rows = [inspector_read(i) for i in (await session.execute(query)).scalars()]
    return make_page(rows, limit=paging.limit, position_of=lambda i: [i.id])


async def update_inspector(
    *, session: AsyncSession, inspector: Inspector, data: InspectorUpdate
) -> Inspector:
    inspector.active = data.active
    await session.flush()
    return inspector


async def list_plans(
    *,
    session: AsyncSession,
    caller: Identity,
    paging: PageParams,
    district_code: str | None = None,
    month: str | None = None,
) -> Page[PlanRead]:
    """Plans the caller may see, newest month first."""
    if caller.kind == ClientKind.district:
        if district_code not in (None, caller.district_code):
            return Page[PlanRead](items=[])
        district_code = caller.district_code
    elif not reads_city(caller):
        raise Forbidden("Inspection plans are for districts and bureaus.")
    query = (
        select(InspectionPlan)
        .order_by(InspectionPlan.month.desc(), InspectionPlan.id.desc())
        .limit(paging.limit + 1)
    )
    if district_code is not None:
        query = query.where(InspectionPlan.district_code == district_code)
    if month is not None:
        query = query.where(InspectionPlan.month == month)
    if paging.after and len(paging.after) == 2:
        last_month, last_id = str(paging.after[0]), str(paging.after[1])
        query = query.where(
            (InspectionPlan.month < last_month)
            | ((InspectionPlan.month == last_month) & (InspectionPlan.id < last_id))
        )
    rows = [await to_read(session, p) for p in (await session.execute(query)).scalars()]
    return make_page(rows, limit=paging.limit, position_of=lambda p: [p.month, p.id])
