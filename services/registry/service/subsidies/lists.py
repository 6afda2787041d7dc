"""Subsidies: a district's monthly list computed, recomputed while a draft, reviewed by EDU, published
and paid by FINANCE; earlier published months corrected by adjustment lines."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.config import RegistrySettings
from services.registry.events import (
    SubsidyListComputed,
    SubsidyListPublished,
    SubsidyListReviewed,
    SubsidyPaymentRecorded,
)
from services.registry.models import District, Facility, SubsidyLine, SubsidyList
from services.registry.schemas.subsidies import PaymentCreate, SubsidyListReview
from services.registry.service.subsidies.common import (
    MonthNotClosed,
    NoSubsidyRate,
    PaymentRecorded,
    SubsidyListFinal,
    SubsidyListNotFound,
    SubsidyListOutOfOrder,
    closes_at,
)
from services.registry.service.subsidies.entitlements import Entitlement, check, entitlements
from services.registry.service.subsidies.rates import rate_at
from shared.api import check_version
from shared.clock import new_id, utcnow
from shared.errors import Forbidden, invalid
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import ClientKind, Identity, require_bureau


def may_compute(caller: Identity, district_code: str) -> bool:
    if caller.kind == ClientKind.bureau:
        return caller.is_bureau("FINANCE", "EDU")
    return caller.kind == ClientKind.district and caller.district_code == district_code


def may_review(caller: Identity, district_code: str) -> bool:
    """EDU: the city's bureau, or the district's own office (a district client) for its district."""
    if caller.kind == ClientKind.bureau:
        return caller.is_bureau("EDU")
    return caller.kind == ClientKind.district and caller.district_code == district_code


async def _accounted(session: AsyncSession, district_code: str, month: str) -> dict[str, int]:
    """What the district's published lists have given each facility for `month` so far."""
    rows = await session.execute(
        select(SubsidyLine.facility_id, func.sum(SubsidyLine.amount_fen))
        .join(SubsidyList, SubsidyList.id == SubsidyLine.list_id)
        .where(
            SubsidyList.district_code == district_code,
            SubsidyList.status == "published",
            SubsidyLine.for_month == month,
        )
        .group_by(SubsidyLine.facility_id)
    )
    return {facility_id: int(total or 0) for facility_id, total in rows.all()}


async def _adjustments(
    session: AsyncSession, *, district_code: str, month: str, as_of: datetime
) -> list[tuple[Entitlement, str, int]]:
    """For every earlier published month of the district, each facility whose entitlement as recorded
    at `as_of` differs from what was published for it: (entitlement now, month, difference)."""
    published = (
        (
            await session.execute(
                select(SubsidyList.month)
                .where(
                    SubsidyList.district_code == district_code,
                    SubsidyList.status == "published",
                    SubsidyList.month < month,
                )
                .order_by(SubsidyList.month)
            )
        )
        .scalars()
        .all()
    )
    found = []
    for earlier in published:
        rate = await rate_at(session, district_code=district_code, year=int(earlier[:4]), at=as_of)
        owed = await entitlements(
            session,
            district_code=district_code,
            month=earlier,
            as_of=as_of,
            rate_fen=rate.amount_fen if rate else 0,
        )
        given = await _accounted(session, district_code, earlier)
        for entitlement in owed:
            difference = entitlement.amount_fen - given.pop(entitlement.facility_id, 0)
            if difference:
                found.append((entitlement, earlier, difference))
        # Paid for a facility that no longer counts at all for that month (e.g. licensed later than recorded).
        for facility_id, amount in given.items():
            if amount:
                name = await session.scalar(select(Facility.name).where(Facility.id == facility_id))
                gone = Entitlement(
                    facility_id=facility_id, facility_name=str(name or ""), places=0, rate_fen=0
                )
                gone.checks.append(check("licensed", False, f"Not licensed in {earlier}", f"{earlier}未持证"))
                found.append((gone, earlier, -amount))
    return found


def _line(list_id: str, entitlement: Entitlement, *, kind: str, for_month: str, amount: int) -> SubsidyLine:
    return SubsidyLine(
        id=new_id(),
        list_id=list_id,
        facility_id=entitlement.facility_id,
        facility_name=entitlement.facility_name,
        kind=kind,
        for_month=for_month,
        eligible=entitlement.eligible,
        places=entitlement.places,
        rate_fen=entitlement.rate_fen,
        amount_fen=amount,
        checks=entitlement.checks,
        refusals=entitlement.refusals,
    )


def list_facts(subsidy_list: SubsidyList) -> dict[str, object]:
    return {
        "list_id": subsidy_list.id,
        "month": subsidy_list.month,
        "district_code": subsidy_list.district_code,
        "status": subsidy_list.status,
        "line_count": subsidy_list.line_count,
        "eligible_lines": subsidy_list.eligible_lines,
        "places": subsidy_list.places,
        "total_fen": subsidy_list.total_fen,
        "version": subsidy_list.version,
        "occurred_at": utcnow(),
    }


async def compute_list(
    *, session: AsyncSession, caller: Identity, month: str, district_code: str, settings: RegistrySettings
) -> SubsidyList:
    """Compute (or recompute, while a draft or returned) the district's list for a closed month."""
    if not may_compute(caller, district_code):
        raise Forbidden("Computing a subsidy list is for FINANCE, EDU or the district's own office.")
    if await session.get(District, district_code) is None:
        raise invalid("district_code", "is not one of Shanghai's 16 districts (see GET /v1/divisions)")
    close = closes_at(month, settings)
    if utcnow() < close:
        raise MonthNotClosed(
            tr(
                "{month} closes at {closes_at}; its list can be computed then.",
                month=month,
                closes_at=close.isoformat(),
            )
        )
    existing = (
        (
            await session.execute(
                select(SubsidyList)
                .where(SubsidyList.month == month, SubsidyList.district_code == district_code)
                .with_for_update()
            )
        )
        .scalars()
        .first()
    )
    if existing is not None and existing.status in ("approved", "published"):
        raise SubsidyListFinal(
            tr("The list for {month} is {status}: it is not recomputed.", month=month, status=existing.status)
        )
    others = (
        await session.execute(
            select(SubsidyList.month, SubsidyList.status).where(
                SubsidyList.district_code == district_code, SubsidyList.month != month
            )
        )
    ).all()
    if any(m > month for m, _ in others) or any(m < month and s != "published" for m, s in others):
        raise SubsidyListOutOfOrder(
            "A district's lists are computed in month order, each after the one before it is published."
        )
    rate = await rate_at(session, district_code=district_code, year=int(month[:4]), at=close)
    if rate is None:
        raise NoSubsidyRate(
            tr(
                "No subsidy rate for {district_code} in {year} was set before {month} closed ({closes_at}).",
                district_code=district_code,
                year=int(month[:4]),
                month=month,
                closes_at=close.isoformat(),
            )
        )
    now = utcnow()
    if existing is None:
        subsidy_list = SubsidyList(
            id=new_id(),
            month=month,
            district_code=district_code,
            status="draft",
            closes_at=close,
            rate_fen=rate.amount_fen,
            computed_by=caller.client_id,
            computed_at=now,
        )
        session.add(subsidy_list)
    else:
        subsidy_list = existing
        await session.execute(delete(SubsidyLine).where(SubsidyLine.list_id == subsidy_list.id))
        subsidy_list.status, subsidy_list.rate_fen = "draft", rate.amount_fen
        subsidy_list.computed_by, subsidy_list.computed_at = caller.client_id, now
        subsidy_list.version += 1
    own = await entitlements(
        session, district_code=district_code, month=month, as_of=close, rate_fen=rate.amount_fen
    )
    lines = [_line(subsidy_list.id, e, kind="entitlement", for_month=month, amount=e.amount_fen) for e in own]
    for entitlement, earlier, difference in await _adjustments(
        session, district_code=district_code, month=month, as_of=close
    ):
        entitlement.checks.append(
            check(
                "adjustment",
                True,
                f"Adjusts {earlier} as recorded at {month}'s close: {entitlement.amount_fen} fen owed, "
                f"{entitlement.amount_fen - difference} fen published",
                f"按{month}关账时记录调整{earlier}：应补{entitlement.amount_fen}分，"
                f"已发布{entitlement.amount_fen - difference}分",
            )
        )
        lines.append(
            _line(subsidy_list.id, entitlement, kind="adjustment", for_month=earlier, amount=difference)
        )
    await session.flush()
    session.add_all(lines)
    subsidy_list.line_count = len(lines)
    subsidy_list.eligible_lines = sum(1 for line in lines if line.kind == "entitlement" and line.eligible)
    subsidy_list.places = sum(line.places for line in lines if line.kind == "entitlement" and line.eligible)
    subsidy_list.total_fen = sum(line.amount_fen for line in lines)
    await session.flush()
    await emit(session, SubsidyListComputed(**list_facts(subsidy_list), closes_at=close))
    return subsidy_list


async def review_list(
    *,
    session: AsyncSession,
    caller: Identity,
    subsidy_list: SubsidyList,
    data: SubsidyListReview,
    if_match: str | None,
) -> SubsidyList:
    if not may_review(caller, subsidy_list.district_code):
        raise Forbidden("Reviewing a subsidy list is for EDU or the district's own office.")
    check_version(subsidy_list.version, if_match, what="subsidy list")
    if subsidy_list.status != "draft":
        raise SubsidyListFinal(
            tr(
                "The list for {month} is {status}: only a draft is reviewed.",
                month=subsidy_list.month,
                status=subsidy_list.status,
            )
        )
    subsidy_list.status = "approved" if data.decision == "approve" else "returned"
    subsidy_list.reviewed_by, subsidy_list.reviewed_at = caller.client_id, utcnow()
    subsidy_list.review_note = data.note
    subsidy_list.version += 1
    await session.flush()
    await emit(
        session, SubsidyListReviewed(**list_facts(subsidy_list), decision=data.decision.value, note=data.note)
    )
    return subsidy_list


async def publish_list(
    *, session: AsyncSession, caller: Identity, subsidy_list: SubsidyList, if_match: str | None
) -> SubsidyList:
    require_bureau(caller, "FINANCE", action="Publishing a subsidy list")
    check_version(subsidy_list.version, if_match, what="subsidy list")
    if subsidy_list.status != "approved":
        raise SubsidyListFinal(
            tr(
                "The list for {month} is {status}: only a list EDU approved is published.",
                month=subsidy_list.month,
                status=subsidy_list.status,
            )
        )
    subsidy_list.status = "published"
    subsidy_list.published_by, subsidy_list.published_at = caller.client_id, utcnow()
    subsidy_list.version += 1
    await session.flush()
    await emit(session, SubsidyListPublished(**list_facts(subsidy_list)))
    return subsidy_list


async def record_payment(
    *, session: AsyncSession, caller: Identity, subsidy_list: SubsidyList, line_id: str, data: PaymentCreate
) -> SubsidyLine:
    """FINANCE records what it paid on a published list's line; the same record again is a no-op, a
    different one a conflict (a payment once recorded stays)."""
    require_bureau(caller, "FINANCE", action="Recording a subsidy payment")
    line = await session.get(SubsidyLine, line_id, with_for_update=True)
    if line is None or line.list_id != subsidy_list.id:
        raise SubsidyListNotFound(tr("No line {line_id} on this list.", line_id=line_id))
    if subsidy_list.status != "published":
        raise SubsidyListFinal("Payments are recorded on published lists only.")
    recorded = (line.paid_fen, line.paid_on, line.payment_reference)
    if line.paid_at is not None:
        if recorded == (data.paid_fen, data.paid_on, data.reference):
            return line
        raise PaymentRecorded(
            tr("Line {line_id} was paid on {paid_on}.", line_id=line_id, paid_on=str(line.paid_on))
        )
    line.paid_fen, line.paid_on, line.payment_reference = data.paid_fen, data.paid_on, data.reference
    line.paid_by, line.paid_at = caller.client_id, utcnow()
    await session.flush()
    await emit(
        session,
        SubsidyPaymentRecorded(
            line_id=line.id,
            list_id=subsidy_list.id,
            month=subsidy_list.month,
            for_month=line.for_month,
            facility_id=line.facility_id,
            district_code=subsidy_list.district_code,
            amount_fen=line.amount_fen,
            paid_fen=data.paid_fen,
            paid_on=data.paid_on,
            reference=data.reference,
            occurred_at=line.paid_at,
        ),
    )
    return line
