"""风险预警: a facility's risk score, the sum of weighted reasons (settings.risk_weights), capped at
100. Computed set-based: a handful of grouped queries for any number of facilities, never a query
per facility, so a district's list (~150) or the city's (~2,000) costs the same few round trips.

Reasons (lookback = settings.risk_lookback_days, default 12 months):
  open_critical_alerts    critical alerts still open or acknowledged (ban/hire alerts count below)
  confirmed_abuse         abuse incidents confirmed within the lookback
  confirmed_incidents     other incidents confirmed within the lookback
  reported_late           incidents the facility reported after its deadline, within the lookback
  failed_inspections      inspections with outcome `fail` within the lookback
  rectify_inspections     inspections with outcome `rectify` within the lookback
  overdue_rectifications  rectifications past `rectify_by` and not done (any age)
  bans                    `ban_issued` alerts at the facility within the lookback
  hire_blocked            `hire_blocked` alerts at the facility within the lookback
  staffing_out_of_ratio   the workforce's last staffing assessment found it out of ratio
  staffing_shortfall      per carer missing to be in ratio
  founded_complaints      complaints answered founded or partly founded within the lookback
  open_complaints         complaints not answered yet (lodged, acknowledged or escalated)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.config import MonitoringSettings
from services.monitoring.models import Alert, Complaint, Facility, Incident, Inspection
from services.monitoring.schemas import RiskListItem, RiskRead, RiskReason
from services.monitoring.service.alerts import DEAD_LETTER
from services.monitoring.service.common import visible_facilities_clause
from shared.errors import invalid
from shared.i18n import N_, translate
from shared.identity import Identity
from shared.pagination import Page, PageParams, encode_cursor

ACTIVE = ("open", "acknowledged")
WORKFORCE_TYPES = ("ban_issued", "hire_blocked")
# Facilities whose risk is listed: those that operate (or did until a suspension).
LISTED_STATUSES = ("approved", "suspended")
DETAILS: dict[str, str] = {
    "open_critical_alerts": N_("critical alert(s) open or acknowledged"),
    "confirmed_abuse": N_("abuse incident(s) confirmed in the last {days} days"),
    "confirmed_incidents": N_("other incident(s) confirmed in the last {days} days"),
    "reported_late": N_("incident(s) reported after the deadline in the last {days} days"),
    "failed_inspections": N_("failed inspection(s) in the last {days} days"),
    "rectify_inspections": N_("inspection(s) requiring rectification in the last {days} days"),
    "overdue_rectifications": N_("rectification(s) past their deadline and not done"),
    "bans": N_("lifetime ban(s) of staff in the last {days} days"),
    "hire_blocked": N_("blocked hire(s) of banned or flagged people in the last {days} days"),
    "staffing_out_of_ratio": N_("staff-to-child ratio not met at the last assessment"),
    "staffing_shortfall": N_("carer(s) missing to meet the ratio"),
    "founded_complaints": N_("complaint(s) found founded or partly founded in the last {days} days"),
    "open_complaints": N_("complaint(s) not answered yet"),
}


@dataclass(frozen=True, slots=True)
class FacilityRisk:
    facility_id: str
    name: str
    district_code: str
    status: str
    score: float
    level: str
    reasons: list[RiskReason]


def _count(expression: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((expression, 1), else_=0))


def level_of(score: float, settings: MonitoringSettings) -> str:
    if score <= 0:
        return "none"
    if score < settings.risk_level_medium:
        return "low"
    if score < settings.risk_level_high:
        return "medium"
    return "high"


async def compute(
    *,
    session: AsyncSession,
    scope: ColumnElement[bool],
    settings: MonitoringSettings,
    now: datetime,
) -> list[FacilityRisk]:
    """The risk of every facility matching `scope` (a filter on Facility), in facility id order."""
    cutoff = now - timedelta(days=settings.risk_lookback_days)
    today = now.astimezone(ZoneInfo(settings.timezone)).date()
    cutoff_day = today - timedelta(days=settings.risk_lookback_days)
    ids = select(Facility.id).where(scope).scalar_subquery()
    counts: dict[str, dict[str, int]] = defaultdict(dict)

    # A dead letter is the platform's failure, not the facility's: it never raises a risk score.
    critical = and_(
        Alert.severity == "critical",
        Alert.status.in_(ACTIVE),
        Alert.type.not_in((*WORKFORCE_TYPES, DEAD_LETTER)),
    )
    recent = Alert.raised_at >= cutoff
    alert_rows = await session.execute(
        select(
            Alert.facility_id,
            _count(critical).label("open_critical_alerts"),
            _count(and_(Alert.type == "ban_issued", recent)).label("bans"),
            _count(and_(Alert.type == "hire_blocked", recent)).label("hire_blocked"),
        )
        .where(Alert.facility_id.in_(ids), or_(critical, and_(Alert.type.in_(WORKFORCE_TYPES), recent)))
        .group_by(Alert.facility_id)
    )
    decided = and_(Incident.status == "confirmed", Incident.decided_at >= cutoff)
    incident_rows = await session.execute(
        select(
            Incident.facility_id,
            _count(and_(decided, Incident.category == "abuse")).label("confirmed_abuse"),
            _count(and_(decided, Incident.category != "abuse")).label("confirmed_incidents"),
            _count(and_(Incident.reported_late, Incident.reported_at >= cutoff)).label("reported_late"),
        )
        .where(
            Incident.facility_id.in_(ids),
            or_(decided, and_(Incident.reported_late, Incident.reported_at >= cutoff)),
        )
        .group_by(Incident.facility_id)
    )
    recent_result = and_(Inspection.status == "completed", Inspection.inspected_on >= cutoff_day)
    overdue = and_(
        Inspection.status == "completed",
        Inspection.rectified_on.is_(None),
        Inspection.rectify_by < today,
    )
    inspection_rows = await session.execute(
        select(
            Inspection.facility_id,
            _count(and_(recent_result, Inspection.outcome == "fail")).label("failed_inspections"),
            _count(and_(recent_result, Inspection.outcome == "rectify")).label("rectify_inspections"),
            _count(overdue).label("overdue_rectifications"),
        )
        .where(Inspection.facility_id.in_(ids), or_(recent_result, overdue))
        .group_by(Inspection.facility_id)
    )
    founded = and_(Complaint.outcome.in_(("founded", "partly_founded")), Complaint.answered_at >= cutoff)
    unanswered = Complaint.status != "answered"
    complaint_rows = await session.execute(
        select(
            Complaint.facility_id,
            _count(founded).label("founded_complaints"),
            _count(unanswered).label("open_complaints"),
        )
        .where(Complaint.facility_id.in_(ids), or_(founded, unanswered))
        .group_by(Complaint.facility_id)
    )
    for result in (alert_rows, incident_rows, inspection_rows, complaint_rows):
        for row in result.mappings():
            for key, value in row.items():
                if key != "facility_id" and value:
                    counts[row["facility_id"]][key] = int(value)

    facilities = await session.execute(
        select(
            Facility.id,
            Facility.name,
            Facility.district_code,
            Facility.status,
            Facility.staffing_in_ratio,
            Facility.staffing_shortfall,
        )
        .where(scope)
        .order_by(Facility.id)
    )
    out = []
    for f in facilities:
        found = counts.get(f.id, {})
        if f.staffing_in_ratio is False:
            found = found | {"staffing_out_of_ratio": 1}
            if f.staffing_shortfall > 0:
                found["staffing_shortfall"] = f.staffing_shortfall
        reasons = [
            RiskReason(
                code=code,
                count=count,
                points=round(count * settings.risk_weights.get(code, 0), 2),
                detail=translate(DETAILS[code], days=settings.risk_lookback_days),
            )
            for code, count in found.items()
            if code in DETAILS
        ]
        reasons.sort(key=lambda r: (-r.points, r.code))
        score = round(min(100.0, sum(r.points for r in reasons)), 2)
        out.append(
            FacilityRisk(
                facility_id=f.id,
                name=f.name,
                district_code=f.district_code,
                status=f.status,
                score=score,
                level=level_of(score, settings),
                reasons=reasons,
            )
        )
    return out


def to_list_item(risk: FacilityRisk, computed_at: datetime) -> RiskListItem:
    return RiskListItem(
        facility_id=risk.facility_id,
        name=risk.name,
        district_code=risk.district_code,
        status=risk.status,
        score=risk.score,
        level=risk.level,
        reasons=risk.reasons,
        computed_at=computed_at,
    )


def ranked_page(
    risks: list[FacilityRisk], *, limit: int, after: list[object] | None
) -> tuple[list[FacilityRisk], list[object] | None]:
    """Highest score first, ties by facility id; the cursor is `[score, facility_id]`."""
    ordered = sorted(risks, key=lambda r: (-r.score, r.facility_id))
    if after:
        score, last_id = float(after[0]), str(after[1])  # type: ignore[arg-type]
        ordered = [r for r in ordered if (-r.score, r.facility_id) > (-score, last_id)]
    page = ordered[:limit]
    more = len(ordered) > limit
    return page, ([page[-1].score, page[-1].facility_id] if more and page else None)


def local_today(now: datetime, settings: MonitoringSettings) -> date:
    return now.astimezone(ZoneInfo(settings.timezone)).date()


async def facility_risk(
    *, session: AsyncSession, facility: Facility, settings: MonitoringSettings, now: datetime
) -> RiskRead:
    [found] = await compute(session=session, scope=Facility.id == facility.id, settings=settings, now=now)
    return RiskRead(
        facility_id=found.facility_id,
        score=found.score,
        level=found.level,
        reasons=found.reasons,
        computed_at=now,
    )


async def ranking(
    *,
    session: AsyncSession,
    caller: Identity,
    settings: MonitoringSettings,
    paging: PageParams,
    district_code: str | None,
    now: datetime,
) -> Page[RiskListItem]:
    """Operating facilities the caller may see, riskiest first."""
    scope = visible_facilities_clause(caller) & Facility.status.in_(LISTED_STATUSES)
    if district_code is not None:
        scope = scope & (Facility.district_code == district_code)
    after = paging.after
    if after is not None:
        try:
            float(after[0]), str(after[1])
        except (ValueError, TypeError, IndexError):
            raise invalid("cursor", "is not a cursor this API returned") from None
    risks = await compute(session=session, scope=scope, settings=settings, now=now)
    page, position = ranked_page(risks, limit=paging.limit, after=after)
    return Page[RiskListItem](
        items=[to_list_item(r, now) for r in page],
        next_cursor=encode_cursor(position) if position else None,
    )
