"""Subsidies: one month's entitlement of each facility of a district, from the registry's records as
they stood at an instant (the month's close, or a later list's close for its adjustments), with the
verdict of every condition in Chinese and English."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.models import (
    CreditEntry,
    EnrolmentFiling,
    Facility,
    FacilityStatusChange,
    FacilityVersion,
)
from services.registry.service.fees import CapStanding, cap_standing, to_yuan
from services.registry.service.subsidies.common import last_day, month_end, month_start
from shared.clock import SHANGHAI, as_utc

AGE_CLASSES = ("infant", "toddler", "preschool")
# Where the registry learns of confirmed findings: the credit entry written from monitoring's
# `incident.confirmed` (handlers.on_incident_confirmed: category, then "; decision …").
CONFIRMED_FINDING = "incident_confirmed"
ABUSE_DETAIL_PREFIX = "abuse;"


def check(code: str, passed: bool, en: str, zh: str) -> dict[str, object]:
    return {"code": code, "passed": passed, "en": en, "zh": zh}


# A failed condition's machine-readable refusal.
REFUSALS = {
    "licensed": "not_operating",
    "inclusive": "not_inclusive",
    "fees_within_cap": "fees_above_cap",
    "enrolment_reported": "enrolment_not_reported",
    "no_confirmed_abuse": "confirmed_abuse",
    "places_counted": "no_inclusive_places",
}


@dataclass
class Entitlement:
    facility_id: str
    facility_name: str
    places: int
    rate_fen: int
    checks: list[dict[str, object]] = field(default_factory=list)

    @property
    def refusals(self) -> list[str]:
        return [REFUSALS[str(c["code"])] for c in self.checks if not c["passed"]]

    @property
    def eligible(self) -> bool:
        return not self.refusals

    @property
    def amount_fen(self) -> int:
        return self.places * self.rate_fen if self.eligible else 0


def _fee_texts(fees: CapStanding, day: date) -> tuple[str, str]:
    """The fee condition's reason in English and Chinese: what was in force on `day` against which cap."""
    if fees.schedule_version is None:
        return f"No fee schedule disclosed in force on {day}", f"{day}无已公示且生效的收费标准"
    if fees.cap_fen is None:
        return (
            f"No inclusive fee cap set for the district in {day.year}",
            f"{day.year}年本区未设普惠收费限价",
        )
    highest = "—" if fees.max_full_day_fen is None else f"{to_yuan(fees.max_full_day_fen)}"
    cap = to_yuan(fees.cap_fen)
    if fees.within:
        return (
            f"Fees within the district's cap: full-day {highest} yuan a month, cap {cap} "
            f"(schedule v{fees.schedule_version} in force on {day})",
            f"收费未超过区限价：全日托{highest}元/月，限价{cap}元（{day}生效的第{fees.schedule_version}版收费标准）",
        )
    return (
        f"Fees above the district's cap: full-day {highest} yuan a month, cap {cap} "
        f"(schedule v{fees.schedule_version} in force on {day})",
        f"收费超过区限价：全日托{highest}元/月，限价{cap}元（{day}生效的第{fees.schedule_version}版收费标准）",
    )


async def _statuses(
    session: AsyncSession, district_code: str, before: datetime
) -> dict[str, list[FacilityStatusChange]]:
    """Each facility of the district's status changes made before `before`, oldest first."""
    rows = await session.execute(
        select(FacilityStatusChange)
        .join(Facility, Facility.id == FacilityStatusChange.facility_id)
        .where(Facility.district_code == district_code, FacilityStatusChange.changed_at < before)
        .order_by(FacilityStatusChange.changed_at, FacilityStatusChange.id)
    )
    history: dict[str, list[FacilityStatusChange]] = defaultdict(list)
    for change in rows.scalars().all():
        history[change.facility_id].append(change)
    return history


def _status_at(changes: list[FacilityStatusChange], instant: datetime) -> str | None:
    status = None
    for change in changes:
        if as_utc(change.changed_at) < instant:
            status = change.to_status
    return status


async def _versions_at(session: AsyncSession, facility_ids: list[str], before: datetime) -> dict[str, dict]:
    """Each facility's latest recorded version before `before` (its inclusive flag and capacity)."""
    if not facility_ids:
        return {}
    rows = await session.execute(
        select(FacilityVersion)
        .where(FacilityVersion.facility_id.in_(facility_ids), FacilityVersion.changed_at < before)
        .order_by(FacilityVersion.facility_id, FacilityVersion.version)
    )
    return {v.facility_id: v.snapshot for v in rows.scalars().all()}


async def _filings_at(
    session: AsyncSession, facility_ids: list[str], month: str, as_of: datetime
) -> dict[str, EnrolmentFiling]:
    """Each facility's enrolment report for `month` as it stood at `as_of` (its latest filing then)."""
    if not facility_ids:
        return {}
    rows = await session.execute(
        select(EnrolmentFiling)
        .where(
            EnrolmentFiling.facility_id.in_(facility_ids),
            EnrolmentFiling.month == month,
            EnrolmentFiling.reported_at <= as_of,
        )
        .order_by(EnrolmentFiling.reported_at, EnrolmentFiling.id)
    )
    return {f.facility_id: f for f in rows.scalars().all()}


async def _abuse_findings_at(
    session: AsyncSession, facility_ids: list[str], year: int, as_of: datetime
) -> dict[str, CreditEntry]:
    """Each facility's first abuse finding confirmed in `year` and recorded by `as_of`."""
    if not facility_ids:
        return {}
    rows = await session.execute(
        select(CreditEntry)
        .where(
            CreditEntry.facility_id.in_(facility_ids),
            CreditEntry.category == CONFIRMED_FINDING,
            CreditEntry.detail.startswith(ABUSE_DETAIL_PREFIX),
            CreditEntry.occurred_on >= date(year, 1, 1),
            CreditEntry.occurred_on <= date(year, 12, 31),
            CreditEntry.recorded_at <= as_of,
        )
        .order_by(CreditEntry.occurred_on.desc())
    )
    return {e.facility_id: e for e in rows.scalars().all()}


async def entitlements(
    session: AsyncSession, *, district_code: str, month: str, as_of: datetime, rate_fen: int
) -> list[Entitlement]:
    """Every facility of the district licensed before the month ended and not closed before it began,
    with each condition's verdict as the records stood at `as_of`. Status, inclusive flag and
    capacity are those in force at the month's end; the enrolment report and abuse findings those
    recorded by `as_of`; the fees those of the schedule in force on the month's last day among the
    schedules published by `as_of`; places per age class min(enrolled, licensed capacity)."""
    start, end = month_start(month), month_end(month)
    history = await _statuses(session, district_code, end)
    candidates = [
        facility_id
        for facility_id, changes in history.items()
        if any(c.to_status == "approved" for c in changes) and _status_at(changes, start) != "closed"
    ]
    versions = await _versions_at(session, candidates, end)
    filings = await _filings_at(session, candidates, month, as_of)
    findings = await _abuse_findings_at(session, candidates, int(month[:4]), as_of)
    names = dict(
        (await session.execute(select(Facility.id, Facility.name).where(Facility.id.in_(candidates)))).all()
    )
    result = []
    for facility_id in sorted(candidates, key=lambda f: (names.get(f, ""), f)):
        snapshot = versions.get(facility_id, {})
        status = _status_at(history[facility_id], end)
        entitlement = Entitlement(
            facility_id=facility_id,
            facility_name=str(names.get(facility_id, "")),
            places=0,
            rate_fen=rate_fen,
        )
        checks = entitlement.checks
        checks.append(
            check(
                "licensed",
                status == "approved",
                f"Licensed and operating at the end of {month}"
                if status == "approved"
                else f"Not operating at the end of {month}: {status}",
                f"{month}月末持证运营" if status == "approved" else f"{month}月末未在运营（{status}）",
            )
        )
        inclusive = bool(snapshot.get("inclusive"))
        checks.append(
            check(
                "inclusive",
                inclusive,
                "Inclusive (普惠) facility" if inclusive else "Not an inclusive facility",
                "普惠性托育机构" if inclusive else "非普惠性托育机构",
            )
        )
        fees = await cap_standing(session, facility_id, last_day(month), published_by=as_of)
        checks.append(check("fees_within_cap", fees.within, *_fee_texts(fees, last_day(month))))
        filing = filings.get(facility_id)
        reported_on = as_utc(filing.reported_at).astimezone(SHANGHAI).date() if filing else None
        checks.append(
            check(
                "enrolment_reported",
                filing is not None,
                f"Enrolment for {month} reported on {reported_on}"
                if filing
                else f"No enrolment reported for {month}",
                f"{month}在托人数已于{reported_on}报送" if filing else f"未报送{month}在托人数",
            )
        )
        finding = findings.get(facility_id)
        checks.append(
            check(
                "no_confirmed_abuse",
                finding is None,
                f"No confirmed abuse finding in {month[:4]}"
                if finding is None
                else f"Abuse finding confirmed on {finding.occurred_on} ({finding.detail})",
                f"{month[:4]}年无经查实的虐童事件"
                if finding is None
                else f"{finding.occurred_on}经查实虐童事件（{finding.detail}）",
            )
        )
        if filing is not None:
            capacity = snapshot.get("capacity") or {}
            per_class = {a: min(getattr(filing, a), int(capacity.get(a, 0))) for a in AGE_CLASSES}
            entitlement.places = sum(per_class.values())
            sums = " + ".join(f"{a} min({getattr(filing, a)}, {capacity.get(a, 0)})" for a in AGE_CLASSES)
            zh_sums = " + ".join(
                f"{word} min({getattr(filing, a)}, {capacity.get(a, 0)})"
                for a, word in zip(AGE_CLASSES, ("乳儿班", "托小班", "托大班"), strict=True)
            )
            checks.append(
                check(
                    "places_counted",
                    entitlement.places > 0,
                    f"Places: enrolled vs licensed capacity per age class, {sums} = {entitlement.places}",
                    f"计补托位：各班型在托人数与核定托位取小，{zh_sums} = {entitlement.places}",
                )
            )
        result.append(entitlement)
    return result
