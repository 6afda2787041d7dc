"""Changes to an employment's terms — its contract type and its social insurance (社保, paid or not,
since when) — each a new version with its history; and the lists the districts and the city keep
an eye on: who lacks social insurance, whose health certificate lapsed, who is suspended."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.events import EmploymentUpdated
from services.workforce.models import Employment, FacilityProjection, Practitioner
from services.workforce.schemas import EmploymentRead, EmploymentUpdate
from services.workforce.service.common import ACTIVE, visible_facilities
from services.workforce.service.hiring import employment_read
from services.workforce.service.history import Value, record_change
from shared.api import check_version
from shared.clock import utcnow
from shared.errors import FieldError, InvalidInput
from shared.events.outbox import emit
from shared.identity import Identity
from shared.pagination import Page, PageParams, cut_page, keyset


async def update_employment(
    *,
    session: AsyncSession,
    caller: Identity,
    employment: Employment,
    data: EmploymentUpdate,
    if_match: str | None,
) -> Employment:
    await session.refresh(employment, with_for_update=True)  # one change at a time
    check_version(employment.version, if_match, what="employment")
    errors = []
    if employment.status != ACTIVE:
        errors.append(FieldError(field="employment", message="has ended; its terms no longer change"))
    paid = (
        employment.social_insurance_paid if data.social_insurance_paid is None else data.social_insurance_paid
    )
    since: date | None = employment.social_insurance_since
    if data.social_insurance_paid is False:
        since = None
    if data.social_insurance_since is not None:
        if not paid:
            errors.append(
                FieldError(
                    field="social_insurance_since", message="is only given when social insurance is paid"
                )
            )
        since = data.social_insurance_since
    if (
        data.contract_type is None
        and data.social_insurance_paid is None
        and data.social_insurance_since is None
    ):
        errors.append(FieldError(field="body", message="names nothing to change"))
    if errors:
        raise InvalidInput(", ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)
    contract = data.contract_type.value if data.contract_type is not None else employment.contract_type
    changes: dict[str, tuple[Value, Value]] = {
        field: (before, after)
        for field, before, after in (
            ("contract_type", employment.contract_type, contract),
            ("social_insurance_paid", employment.social_insurance_paid, paid),
            ("social_insurance_since", employment.social_insurance_since, since),
        )
        if before != after
    }
    if not changes:
        return employment  # the same terms again: nothing to record
    now = utcnow()
    record_change(
        session,
        employment=employment,
        kind="updated",
        by=caller.client_id,
        changes=changes,
        note=data.note,
        at=now,
    )
    employment.contract_type = contract
    employment.social_insurance_paid = paid
    employment.social_insurance_since = since
    employment.version += 1
    await session.flush()
    await emit(
        session,
        EmploymentUpdated(
            employment_id=employment.id,
            practitioner_id=employment.practitioner_id,
            facility_id=employment.facility_id,
            district_code=employment.district_code,
            contract_type=employment.contract_type,
            social_insurance_paid=employment.social_insurance_paid,
            social_insurance_since=employment.social_insurance_since,
            version=employment.version,
            updated_at=now,
        ),
    )
    return employment


# What each compliance list selects among the active employments the caller may see.
CONCERNS: dict[str, Callable[[], ColumnElement[bool]]] = {
    "social_insurance": lambda: Employment.social_insurance_paid.is_(False),
    "health_certificate": lambda: Employment.health_flagged_on.is_not(None),
    "suspended": lambda: Employment.standing == "suspended",
    "provisional": lambda: Employment.standing == "provisional",
}


async def employments_of_concern(
    *,
    session: AsyncSession,
    caller: Identity,
    concern: str,
    district_code: str | None,
    page: PageParams,
) -> Page[EmploymentRead]:
    """Active employments at the facilities the caller may see (a district its own, the bureaus the
    city) that raise `concern`, by district and id."""
    query = (
        select(Employment, Practitioner.name)
        .join(Practitioner, Practitioner.id == Employment.practitioner_id)
        .join(FacilityProjection, FacilityProjection.facility_id == Employment.facility_id)
        .where(Employment.status == ACTIVE, CONCERNS[concern](), visible_facilities(caller))
    )
    if district_code:
        query = query.where(Employment.district_code == district_code)
    query = keyset(query, [Employment.district_code, Employment.id], page)
    rows, cursor = cut_page(
        (await session.execute(query)).all(),
        limit=page.limit,
        position_of=lambda row: [row[0].district_code, row[0].id],
    )
    return Page[EmploymentRead](items=[employment_read(e, name) for e, name in rows], next_cursor=cursor)
