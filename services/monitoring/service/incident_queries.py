"""Reading incidents: who sees which (a parent its own reports, everyone else the incidents of the
facilities it may see), lists and the reply shapes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.errors import IncidentNotFound
from services.monitoring.models import Facility, Finding, Incident, IncidentTransition
from services.monitoring.schemas import (
    FindingRead,
    IncidentDetail,
    IncidentRead,
    IncidentTransitionRead,
)
from services.monitoring.service.access import is_parent
from services.monitoring.service.common import may_see, visible_facilities_clause
from shared.clock import as_utc
from shared.errors import invalid
from shared.i18n import tr
from shared.identity import ClientKind, Identity
from shared.pagination import PageParams


@dataclass(frozen=True, slots=True)
class IncidentFilters:
    facility_id: str | None = None
    district_code: str | None = None
    status: str | None = None
    category: str | None = None


async def get_visible_incident(
    *, session: AsyncSession, caller: Identity, incident_id: str, for_update: bool = False
) -> tuple[Incident, Facility]:
    """A parent sees the reports it made; everyone else the incidents of facilities it may see."""
    query = (
        select(Incident, Facility)
        .join(Facility, Facility.id == Incident.facility_id)
        .where(Incident.id == incident_id)
    )
    if for_update:
        query = query.with_for_update(of=Incident)
    row = (await session.execute(query)).first()
    if row is None:
        raise IncidentNotFound(tr("No incident {incident_id} that you may see.", incident_id=incident_id))
    incident, facility = row.Incident, row.Facility
    visible = (
        incident.reporter_client_id == caller.client_id
        if is_parent(caller) or caller.kind == ClientKind.app
        else may_see(caller, facility)
    )
    if not visible:
        raise IncidentNotFound(tr("No incident {incident_id} that you may see.", incident_id=incident_id))
    return incident, facility


async def list_incidents(
    *, session: AsyncSession, caller: Identity, filters: IncidentFilters, page: PageParams
) -> list[Incident]:
    """Newest report first; `page.after` is `[reported_at, id]` of the last row seen."""
    query = select(Incident).order_by(Incident.reported_at.desc(), Incident.id.desc()).limit(page.limit + 1)
    if is_parent(caller) or caller.kind == ClientKind.app:
        query = query.where(Incident.reporter_client_id == caller.client_id)
    else:
        query = query.join(Facility, Facility.id == Incident.facility_id).where(
            visible_facilities_clause(caller)
        )
    for column, value in (
        (Incident.facility_id, filters.facility_id),
        (Incident.district_code, filters.district_code),
        (Incident.status, filters.status),
        (Incident.category, filters.category),
    ):
        if value is not None:
            query = query.where(column == value)
    if page.after:
        try:
            reported_at, last_id = datetime.fromisoformat(str(page.after[0])), str(page.after[1])
        except (ValueError, IndexError):
            raise invalid("cursor", "is not a cursor this API returned") from None
        query = query.where(
            or_(
                Incident.reported_at < reported_at,
                and_(Incident.reported_at == reported_at, Incident.id < last_id),
            )
        )
    return list((await session.execute(query)).scalars())


def to_read(incident: Incident) -> IncidentRead:
    read = IncidentRead.model_validate(incident, from_attributes=True)
    for name in (
        "occurred_at",
        "reported_at",
        "report_due_at",
        "finding_due_at",
        "finding_overdue_at",
        "decided_at",
    ):
        value = getattr(read, name)
        if value is not None:
            setattr(read, name, as_utc(value))
    return read


async def to_detail(session: AsyncSession, incident: Incident) -> IncidentDetail:
    history = (
        await session.execute(
            select(IncidentTransition)
            .where(IncidentTransition.incident_id == incident.id)
            .order_by(IncidentTransition.at, IncidentTransition.id)
        )
    ).scalars()
    findings = (
        await session.execute(
            select(Finding)
            .where(Finding.incident_id == incident.id)
            .order_by(Finding.recorded_at, Finding.id)
        )
    ).scalars()
    return IncidentDetail(
        **to_read(incident).model_dump(),
        history=[
            IncidentTransitionRead(
                from_status=t.from_status, to_status=t.to_status, actor=t.actor, note=t.note, at=as_utc(t.at)
            )
            for t in history
        ],
        findings=[_finding_read(f) for f in findings],
    )


def _finding_read(finding: Finding) -> FindingRead:
    read = FindingRead.model_validate(finding, from_attributes=True)
    read.recorded_at = as_utc(read.recorded_at)
    read.reviewed_at = as_utc(read.reviewed_at) if read.reviewed_at else None
    return read
