"""Facilities: applications (申办), edits with versions, enrolment, and the facts events carry."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.config import RegistrySettings
from services.registry.errors import FacilityNotFound, StatusChangeNotAllowed
from services.registry.events import EnrolmentUpdated, FacilitySubmitted, FacilityUpdated, Places
from services.registry.models import (
    Enrolment,
    EnrolmentFiling,
    Facility,
    FacilityStatusChange,
    FacilityVersion,
    Town,
)
from services.registry.schemas import (
    AGE_CLASSES,
    Capacity,
    Classes,
    EnrolmentReport,
    FacilityCreate,
    FacilityRead,
    FacilityStatus,
    FacilityUpdate,
    OpeningHours,
    PerAgeClass,
)
from shared.api import check_version
from shared.errors import FieldError, InvalidInput, invalid
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import ClientKind, Identity
from shared.pagination import PageParams, cut_page, keyset


def class_sizes(settings: RegistrySettings) -> dict[str, int]:
    return {
        "infant": settings.class_size_infant,
        "toddler": settings.class_size_toddler,
        "preschool": settings.class_size_preschool,
    }


def check_capacity(capacity: Capacity, classes: Classes | None, settings: RegistrySettings) -> Classes:
    """Capacity may not exceed the standard class size × the classes declared. Without a
    declaration, the fewest classes that hold the capacity are assumed."""
    sizes = class_sizes(settings)
    if classes is None:
        return Classes(**{a: math.ceil(getattr(capacity, a) / sizes[a]) for a in AGE_CLASSES})
    errors = [
        FieldError(
            field=f"capacity.{a}",
            message=f"{getattr(capacity, a)} places need at least "
            f"{math.ceil(getattr(capacity, a) / sizes[a])} {a} classes of {sizes[a]}; "
            f"{getattr(classes, a)} declared",
        )
        for a in AGE_CLASSES
        if getattr(capacity, a) > getattr(classes, a) * sizes[a]
    ]
    if errors:
        raise InvalidInput("Capacity exceeds the standard class sizes × classes.", errors=errors)
    return classes


async def town_or_422(session: AsyncSession, town_code: str) -> Town:
    town = await session.get(Town, town_code)
    if town is None:
        raise invalid("town_code", "is not a 街镇 or other unit of Shanghai (see GET /v1/divisions)")
    return town


def facts(facility: Facility) -> dict[str, Any]:
    """The fields every facility event carries (docs/EVENTS.md)."""
    return {
        "facility_id": facility.id,
        "name": facility.name,
        "kind": facility.kind,
        "inclusive": facility.inclusive,
        "has_nursery_class": facility.has_nursery_class,
        "district_code": facility.district_code,
        "town_code": facility.town_code,
        "status": facility.status,
        "license_no": facility.license_no,
        "owner_client_id": facility.owner_client_id,
        "capacity": Places(**capacity_of(facility).model_dump()),
        "enrolment": Places(**enrolment_of(facility).model_dump()),
        "opening_hours": facility.opening_hours,
        "version": facility.version,
        "occurred_at": facility.updated_at,
    }


def capacity_of(facility: Facility) -> Capacity:
    return Capacity(
        infant=facility.capacity_infant,
        toddler=facility.capacity_toddler,
        preschool=facility.capacity_preschool,
    )


def enrolment_of(facility: Facility) -> PerAgeClass:
    return PerAgeClass(
        infant=facility.enrolled_infant,
        toddler=facility.enrolled_toddler,
        preschool=facility.enrolled_preschool,
    )


def free_places_of(facility: Facility) -> PerAgeClass:
    return PerAgeClass(
        **{
            a: max(0, getattr(facility, f"capacity_{a}") - getattr(facility, f"enrolled_{a}"))
            for a in AGE_CLASSES
        }
    )


def to_read(facility: Facility) -> FacilityRead:
    return FacilityRead(
        id=facility.id,
        name=facility.name,
        kind=facility.kind,
        inclusive=facility.inclusive,
        has_nursery_class=facility.has_nursery_class,
        town_code=facility.town_code,
        district_code=facility.district_code,
        address=facility.address,
        lat=facility.lat,
        lon=facility.lon,
        operator_name=facility.operator_name,
        service_modes=facility.service_modes,
        capacity=capacity_of(facility),
        classes=Classes(
            infant=facility.classes_infant,
            toddler=facility.classes_toddler,
            preschool=facility.classes_preschool,
        ),
        enrolment=enrolment_of(facility),
        enrolment_month=facility.enrolment_month,
        opening_hours=[OpeningHours.model_validate(h) for h in facility.opening_hours],
        status=facility.status,
        license_no=facility.license_no,
        rejection_reasons=facility.rejection_reasons,
        grade=facility.grade,
        is_demonstration=facility.is_demonstration,
        version=facility.version,
        submitted_at=facility.submitted_at,
        approved_at=facility.approved_at,
        updated_at=facility.updated_at,
    )


async def record_new_facility(
    session: AsyncSession,
    *,
    caller: Identity,
    data: FacilityCreate,
    settings: RegistrySettings,
    status: FacilityStatus,
    reason: str,
    license_no: str | None = None,
) -> Facility:
    """A facility's first row, its first status change and its first version: an application
    (`submitted`) or a facility licensed before Cradle (`approved`, imported). The caller emits."""
    classes = check_capacity(data.capacity, data.classes, settings)
    town = await town_or_422(session, data.town_code)
    now = datetime.now(UTC)
    facility = Facility(
        id=str(uuid.uuid4()),
        name=data.name,
        kind=data.kind.value,
        inclusive=data.inclusive,
        has_nursery_class=data.has_nursery_class,
        town_code=town.code,
        district_code=town.district_code,
        address=data.address,
        lat=data.lat,
        lon=data.lon,
        operator_name=data.operator_name,
        service_modes=[m.value for m in data.service_modes],
        opening_hours=[h.model_dump() for h in data.opening_hours],
        classes_infant=classes.infant,
        classes_toddler=classes.toddler,
        classes_preschool=classes.preschool,
        capacity_infant=data.capacity.infant,
        capacity_toddler=data.capacity.toddler,
        capacity_preschool=data.capacity.preschool,
        status=status.value,
        license_no=license_no,
        rejection_reasons=[],
        # An operator's own application stays its own: it may read and edit it from now on.
        owner_client_id=caller.client_id if caller.kind == ClientKind.operator else None,
        submitted_at=now,
        approved_at=now if status == FacilityStatus.approved else None,
        updated_at=now,
    )
    session.add(facility)
    session.add(
        FacilityStatusChange(
            id=str(uuid.uuid4()),
            facility_id=facility.id,
            from_status=None,
            to_status=facility.status,
            reason=reason,
            changed_by=caller.client_id,
            changed_at=now,
        )
    )
    await session.flush()
    await record_version(session=session, facility=facility, caller=caller)
    return facility


async def submit_facility(
    *, session: AsyncSession, caller: Identity, data: FacilityCreate, settings: RegistrySettings
) -> Facility:
    """An application (申办): stored as `submitted` and announced to the other services."""
    facility = await record_new_facility(
        session,
        caller=caller,
        data=data,
        settings=settings,
        status=FacilityStatus.submitted,
        reason="application submitted",
    )
    await emit(session, FacilitySubmitted(**facts(facility)))
    return facility


async def get_visible_facility(
    *, session: AsyncSession, caller: Identity, facility_id: str, for_update: bool = False
) -> Facility:
    """404 both when it does not exist and when the caller may not see it: never reveal existence."""
    facility = await session.get(Facility, facility_id, with_for_update=for_update or None)
    if facility is None or not caller.may_see_facility(
        facility_id=facility.id,
        district_code=facility.district_code,
        owner_client_id=facility.owner_client_id,
    ):
        raise FacilityNotFound(tr("No facility {facility_id} that you may see.", facility_id=facility_id))
    return facility


async def record_version(*, session: AsyncSession, facility: Facility, caller: Identity) -> None:
    session.add(
        FacilityVersion(
            facility_id=facility.id,
            version=facility.version,
            snapshot=to_read(facility).model_dump(mode="json"),
            changed_by=caller.client_id,
            changed_at=facility.updated_at,
        )
    )
    await session.flush()


async def update_facility(
    *,
    session: AsyncSession,
    caller: Identity,
    facility: Facility,
    data: FacilityUpdate,
    if_match: str | None,
    settings: RegistrySettings,
) -> Facility:
    check_version(facility.version, if_match, what="facility")
    if facility.status == FacilityStatus.closed:
        raise StatusChangeNotAllowed("A closed facility's record is final.")
    changes = data.model_dump(exclude_unset=True)
    capacity = data.capacity or capacity_of(facility)
    if data.capacity is not None or data.classes is not None:
        current = Classes(
            infant=facility.classes_infant,
            toddler=facility.classes_toddler,
            preschool=facility.classes_preschool,
        )
        has_declaration = any(getattr(current, a) for a in AGE_CLASSES)
        declared = data.classes if data.classes is not None else (current if has_declaration else None)
        classes = check_capacity(capacity, declared, settings)
        enrolled = enrolment_of(facility)
        over = [a for a in AGE_CLASSES if getattr(enrolled, a) > getattr(capacity, a)]
        if over:
            raise InvalidInput(
                "Capacity would fall below the children enrolled.",
                errors=[FieldError(field=f"capacity.{a}", message="below current enrolment") for a in over],
            )
        for a in AGE_CLASSES:
            setattr(facility, f"capacity_{a}", getattr(capacity, a))
            setattr(facility, f"classes_{a}", getattr(classes, a))
    if changes.get("has_nursery_class") and facility.kind != "kindergarten":
        raise invalid("has_nursery_class", "applies to kindergartens only (托幼一体)")
    for field in ("name", "inclusive", "has_nursery_class", "address", "lat", "lon", "operator_name"):
        if field in changes:
            setattr(facility, field, changes[field])
    if data.service_modes is not None:
        facility.service_modes = [m.value for m in data.service_modes]
    if data.opening_hours is not None:
        facility.opening_hours = [h.model_dump() for h in data.opening_hours]
    facility.version += 1
    facility.updated_at = datetime.now(UTC)
    await session.flush()
    await record_version(session=session, facility=facility, caller=caller)
    await emit(session, FacilityUpdated(**facts(facility)))
    return facility


async def report_enrolment(
    *,
    session: AsyncSession,
    caller: Identity,
    facility: Facility,
    data: EnrolmentReport,
    if_match: str | None,
) -> Facility:
    """Monthly enrolment per age class; a second report for the month replaces the first."""
    check_version(facility.version, if_match, what="facility")
    if facility.status not in (FacilityStatus.approved, FacilityStatus.suspended):
        raise StatusChangeNotAllowed("Enrolment is reported for approved facilities.")
    over = [a for a in AGE_CLASSES if getattr(data, a) > getattr(facility, f"capacity_{a}")]
    if over:
        raise InvalidInput(
            "Enrolment may not exceed capacity.",
            errors=[
                FieldError(field=a, message=f"exceeds the capacity of {getattr(facility, f'capacity_{a}')}")
                for a in over
            ],
        )
    now = datetime.now(UTC)
    existing = await session.get(Enrolment, (facility.id, data.month))
    if existing is None:
        session.add(
            Enrolment(
                facility_id=facility.id,
                month=data.month,
                infant=data.infant,
                toddler=data.toddler,
                preschool=data.preschool,
                reported_by=caller.client_id,
                reported_at=now,
            )
        )
    else:
        existing.infant, existing.toddler, existing.preschool = data.infant, data.toddler, data.preschool
        existing.reported_by, existing.reported_at = caller.client_id, now
    # Every report is also kept as filed: a month's subsidy reads the report as it stood at the
    # month's close, not a correction made after it (service/subsidies.py).
    session.add(
        EnrolmentFiling(
            id=str(uuid.uuid4()),
            facility_id=facility.id,
            month=data.month,
            infant=data.infant,
            toddler=data.toddler,
            preschool=data.preschool,
            reported_by=caller.client_id,
            reported_at=now,
        )
    )
    # The row keeps the latest month's figures (an older month's correction leaves them be).
    if facility.enrolment_month is None or data.month >= facility.enrolment_month:
        facility.enrolled_infant, facility.enrolled_toddler = data.infant, data.toddler
        facility.enrolled_preschool, facility.enrolment_month = data.preschool, data.month
    facility.version += 1
    facility.updated_at = now
    await session.flush()
    await emit(session, EnrolmentUpdated(**facts(facility), month=data.month))
    return facility


async def enrolment_history(
    *, session: AsyncSession, facility: Facility, page: PageParams
) -> tuple[list[Enrolment], str | None]:
    """Newest month first."""
    query = keyset(
        select(Enrolment).where(Enrolment.facility_id == facility.id),
        [Enrolment.month],
        page,
        descending=True,
    )
    rows = (await session.execute(query)).scalars().all()
    return cut_page(rows, limit=page.limit, position_of=lambda r: [r.month])


async def versions(
    *, session: AsyncSession, facility: Facility, page: PageParams
) -> tuple[list[FacilityVersion], str | None]:
    """Newest version first."""
    query = keyset(
        select(FacilityVersion).where(FacilityVersion.facility_id == facility.id),
        [FacilityVersion.version],
        page,
        descending=True,
    )
    rows = (await session.execute(query)).scalars().all()
    return cut_page(rows, limit=page.limit, position_of=lambda r: [r.version])


async def status_history(
    *, session: AsyncSession, facility: Facility, page: PageParams
) -> tuple[list[FacilityStatusChange], str | None]:
    """Oldest change first."""
    query = keyset(
        select(FacilityStatusChange).where(FacilityStatusChange.facility_id == facility.id),
        [FacilityStatusChange.changed_at, FacilityStatusChange.id],
        page,
    )
    rows = (await session.execute(query)).scalars().all()
    return cut_page(rows, limit=page.limit, position_of=lambda r: [r.changed_at, r.id])
