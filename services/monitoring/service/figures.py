"""Monitoring's figures for the plan's indicators (`/v1/indicators`), per district and for the
city: approved facilities (the denominator), those inspected on site in the year
(annual_onsite_inspection), incidents by category and status, alerts by severity."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.config import MonitoringSettings
from services.monitoring.models import Alert, Facility, Incident, Inspection
from services.monitoring.schemas import DistrictFigures, Figures
from services.monitoring.service.access import reads_city
from shared.errors import Forbidden
from shared.identity import ClientKind, Identity


def _district_scope(caller: Identity, column: ColumnElement[str]) -> ColumnElement[bool]:
    if reads_city(caller):
        return true()
    if caller.kind == ClientKind.district and caller.district_code:
        return column == caller.district_code
    raise Forbidden("Figures are for districts and bureaus.")


async def compute(
    *, session: AsyncSession, caller: Identity, year: int, settings: MonitoringSettings, now: datetime
) -> Figures:
    zone = ZoneInfo(settings.timezone)
    starts = datetime(year, 1, 1, tzinfo=zone).astimezone(UTC)
    ends = datetime(year + 1, 1, 1, tzinfo=zone).astimezone(UTC)
    approved = (Facility.status == "approved") & _district_scope(caller, Facility.district_code)
    facilities = dict(
        (
            await session.execute(
                select(Facility.district_code, func.count()).where(approved).group_by(Facility.district_code)
            )
        ).all()
    )
    inspected = dict(
        (
            await session.execute(
                select(Facility.district_code, func.count(func.distinct(Inspection.facility_id)))
                .join(Facility, Facility.id == Inspection.facility_id)
                .where(
                    approved,
                    Inspection.status == "completed",
                    Inspection.inspected_on >= date(year, 1, 1),
                    Inspection.inspected_on <= date(year, 12, 31),
                )
                .group_by(Facility.district_code)
            )
        ).all()
    )
    incidents: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for district, category, status, count in await session.execute(
        select(Incident.district_code, Incident.category, Incident.status, func.count())
        .where(
            _district_scope(caller, Incident.district_code),
            Incident.occurred_at >= starts,
            Incident.occurred_at < ends,
        )
        .group_by(Incident.district_code, Incident.category, Incident.status)
    ):
        incidents[district][category][status] = count
    alerts: dict[str, dict[str, int]] = defaultdict(dict)
    for district, severity, count in await session.execute(
        select(Alert.district_code, Alert.severity, func.count())
        .where(
            _district_scope(caller, Alert.district_code), Alert.raised_at >= starts, Alert.raised_at < ends
        )
        .group_by(Alert.district_code, Alert.severity)
    ):
        alerts[district][severity] = count

    districts = []
    for code in sorted(set(facilities) | set(incidents) | set(alerts)):
        districts.append(
            _figures(
                code,
                facilities.get(code, 0),
                inspected.get(code, 0),
                {c: dict(s) for c, s in incidents.get(code, {}).items()},
                alerts.get(code, {}),
            )
        )
    city_incidents: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    city_alerts: dict[str, int] = defaultdict(int)
    for d in districts:
        for category, by_status in d.incidents.items():
            for status, count in by_status.items():
                city_incidents[category][status] += count
        for severity, count in d.alerts_by_severity.items():
            city_alerts[severity] += count
    city = _figures(
        "",
        sum(d.facilities_approved for d in districts),
        sum(d.facilities_inspected_onsite for d in districts),
        {c: dict(s) for c, s in city_incidents.items()},
        dict(city_alerts),
    )
    return Figures(year=year, computed_at=now, districts=districts, city=city)


def _figures(
    code: str, approved: int, inspected: int, incidents: dict[str, dict[str, int]], alerts: dict[str, int]
) -> DistrictFigures:
    return DistrictFigures(
        district_code=code,
        facilities_approved=approved,
        facilities_inspected_onsite=inspected,
        onsite_inspection_rate=round(inspected / approved, 4) if approved else None,
        incidents=incidents,
        alerts_by_severity=alerts,
    )
