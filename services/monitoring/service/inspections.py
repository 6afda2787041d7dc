"""On-site inspections: planned by a draw (or ad hoc by the district), completed once with a
checklist result, then rectified by a deadline when items failed. Facilities see only their
completed inspections: a 双随机 inspection is unannounced."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.config import MonitoringSettings
from services.monitoring.errors import AlreadyDecided, InspectionNotFound
from services.monitoring.events import InspectionCompleted, InspectionItem, RectificationCompleted
from services.monitoring.models import Alert, Facility, Inspection, Inspector
from services.monitoring.schemas import (
    InspectionCreate,
    InspectionOutcome,
    InspectionRead,
    RectificationCreate,
    ResultCreate,
)
from services.monitoring.service import alerts
from services.monitoring.service.access import reads_city, reads_district, require_supervisor
from services.monitoring.service.common import get_visible_facility, may_see, visible_facilities_clause
from services.monitoring.service.risk import local_today
from shared.clock import as_utc, new_id
from shared.errors import FieldError, InvalidInput
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import ClientKind, Identity
from shared.pagination import PageParams


@dataclass(frozen=True, slots=True)
class InspectionFilters:
    facility_id: str | None = None
    district_code: str | None = None
    status: str | None = None
    plan_id: str | None = None


def to_read(inspection: Inspection) -> InspectionRead:
    read = InspectionRead.model_validate(inspection, from_attributes=True)
    read.created_at = as_utc(read.created_at)
    if read.rectification_overdue_at is not None:
        read.rectification_overdue_at = as_utc(read.rectification_overdue_at)
    return read


def _visible(caller: Identity, inspection: Inspection, facility: Facility) -> bool:
    if reads_district(caller, inspection.district_code):
        return True
    return inspection.status == "completed" and may_see(caller, facility)


async def get_visible_inspection(
    *, session: AsyncSession, caller: Identity, inspection_id: str, for_update: bool = False
) -> tuple[Inspection, Facility]:
    query = (
        select(Inspection, Facility)
        .join(Facility, Facility.id == Inspection.facility_id)
        .where(Inspection.id == inspection_id)
    )
    if for_update:
        query = query.with_for_update(of=Inspection)
    row = (await session.execute(query)).first()
    if row is None or not _visible(caller, row.Inspection, row.Facility):
        raise InspectionNotFound(
            tr(
                "No inspection {inspection_id} that you may see.",
                inspection_id=inspection_id,
            )
        )
    return row.Inspection, row.Facility


async def list_inspections(
    *, session: AsyncSession, caller: Identity, filters: InspectionFilters, page: PageParams
) -> list[Inspection]:
    """Ordered by id (stable under inserts); the cursor is the last id."""
    query = select(Inspection).order_by(Inspection.id).limit(page.limit + 1)
    if caller.kind == ClientKind.district:
        query = query.where(Inspection.district_code == caller.district_code)
    elif not reads_city(caller):
        query = query.join(Facility, Facility.id == Inspection.facility_id).where(
            visible_facilities_clause(caller), Inspection.status == "completed"
        )
    for column, value in (
        (Inspection.facility_id, filters.facility_id),
        (Inspection.district_code, filters.district_code),
        (Inspection.status, filters.status),
        (Inspection.plan_id, filters.plan_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if page.after:
        query = query.where(Inspection.id > str(page.after[0]))
    return list((await session.execute(query)).scalars())


async def create_adhoc(
    *, session: AsyncSession, caller: Identity, data: InspectionCreate, now: datetime
) -> Inspection:
    facility = await get_visible_facility(session=session, caller=caller, facility_id=data.facility_id)
    require_supervisor(caller, facility.district_code, "plans inspections")
    found = {
        i.id: i
        for i in (
            await session.execute(select(Inspector).where(Inspector.id.in_(data.inspector_ids)))
        ).scalars()
    }
    errors, seen = [], set()
    for index, inspector_id in enumerate(data.inspector_ids):
        inspector = found.get(inspector_id)
        if inspector_id in seen:
            errors.append(FieldError(field=f"inspector_ids.{index}", message="is named twice"))
        elif inspector is None or inspector.district_code != facility.district_code:
            errors.append(
                FieldError(
                    field=f"inspector_ids.{index}", message="is not an inspector of the facility's district"
                )
            )
        elif not inspector.active:
            errors.append(FieldError(field=f"inspector_ids.{index}", message="is no longer active"))
        seen.add(inspector_id)
    if errors:
        raise InvalidInput("Some inspectors cannot inspect this facility.", errors=errors)
    inspection = Inspection(
        id=new_id(),
        facility_id=facility.id,
        district_code=facility.district_code,
        inspector_ids=sorted(seen),
        status="planned",
        created_at=now,
        updated_at=now,
    )
    session.add(inspection)
    await session.flush()
    return inspection


def _result_errors(data: ResultCreate, *, today: date) -> list[FieldError]:
    errors: list[FieldError] = []
    codes: set[str] = set()
    for index, item in enumerate(data.items):
        if item.code in codes:
            errors.append(FieldError(field=f"items.{index}.code", message=f"{item.code.value} appears twice"))
        codes.add(item.code)
    inspected_on = data.inspected_on or today
    if data.inspected_on is not None and data.inspected_on > today:
        errors.append(FieldError(field="inspected_on", message="is in the future"))
    failed = [item.code.value for item in data.items if not item.passed]
    if data.outcome == InspectionOutcome.passed:
        if failed:
            errors.append(
                FieldError(field="outcome", message=f"is pass, but items failed: {', '.join(failed)}")
            )
        if data.rectify_by is not None:
            errors.append(
                FieldError(field="rectify_by", message="is given only with outcome rectify or fail")
            )
    else:
        if not failed:
            errors.append(
                FieldError(field="outcome", message=f"is {data.outcome.value}, but every item passed")
            )
        if data.rectify_by is None and data.outcome == InspectionOutcome.rectify:
            errors.append(FieldError(field="rectify_by", message="is required when the outcome is rectify"))
        elif data.rectify_by is not None and (data.rectify_by <= today or data.rectify_by <= inspected_on):
            errors.append(FieldError(field="rectify_by", message="is a date in the future"))
    return errors


async def record_result(
    *,
    session: AsyncSession,
    caller: Identity,
    inspection: Inspection,
    facility: Facility,
    data: ResultCreate,
    settings: MonitoringSettings,
    now: datetime,
) -> Inspection:
    require_supervisor(caller, inspection.district_code, "records inspection results")
    if inspection.status == "completed":
        raise AlreadyDecided(
            f"Inspection {inspection.id} already has its result ({inspection.outcome}, "
            f"{inspection.inspected_on}); a result is recorded once."
        )
    if inspection.status == "cancelled":
        raise AlreadyDecided(
            tr(
                "Inspection {inspection_id} was cancelled when its plan was redrawn.",
                inspection_id=inspection.id,
            )
        )
    today = local_today(now, settings)
    if errors := _result_errors(data, today=today):
        raise InvalidInput("The inspection result is inconsistent.", errors=errors)
    items = [InspectionItem(code=i.code.value, passed=i.passed, note=i.note) for i in data.items]
    inspection.status = "completed"
    inspection.outcome = data.outcome.value
    inspection.items = [i.model_dump() for i in items]
    inspection.inspected_on = data.inspected_on or today
    inspection.rectify_by = data.rectify_by
    inspection.recorded_by = caller.client_id
    inspection.version += 1
    inspection.updated_at = now
    await session.flush()
    await emit(
        session,
        InspectionCompleted(
            inspection_id=inspection.id,
            facility_id=inspection.facility_id,
            district_code=inspection.district_code,
            inspected_on=inspection.inspected_on,
            outcome=inspection.outcome,
            items=items,
            rectify_by=inspection.rectify_by,
        ),
    )
    return inspection


async def record_rectification(
    *,
    session: AsyncSession,
    caller: Identity,
    inspection: Inspection,
    data: RectificationCreate,
    settings: MonitoringSettings,
    now: datetime,
) -> Inspection:
    require_supervisor(caller, inspection.district_code, "confirms rectifications")
    if inspection.status != "completed" or inspection.rectify_by is None:
        raise AlreadyDecided(
            tr(
                "Inspection {inspection_id} asks for no rectification.",
                inspection_id=inspection.id,
            )
        )
    if inspection.rectified_on is not None:
        raise AlreadyDecided(
            f"Inspection {inspection.id} was already rectified on {inspection.rectified_on}."
        )
    today = local_today(now, settings)
    if data.rectified_on > today:
        raise InvalidInput(errors=[FieldError(field="rectified_on", message="is in the future")])
    if inspection.inspected_on is not None and data.rectified_on < inspection.inspected_on:
        raise InvalidInput(errors=[FieldError(field="rectified_on", message="is before the inspection")])
    inspection.rectified_on = data.rectified_on
    inspection.rectification_note = data.note
    inspection.version += 1
    inspection.updated_at = now
    await session.flush()
    await emit(
        session,
        RectificationCompleted(
            inspection_id=inspection.id, facility_id=inspection.facility_id, rectified_on=data.rectified_on
        ),
    )
    overdue = (
        await session.execute(
            select(Alert).where(
                and_(
                    Alert.source_ref == f"rectification_overdue:{inspection.id}",
                    Alert.status.in_(("open", "acknowledged")),
                )
            )
        )
    ).scalar_one_or_none()
    if overdue is not None:
        await alerts.transition(
            session, alert=overdue, to_status="resolved", actor=caller.client_id, note="rectified", now=now
        )
    return inspection
