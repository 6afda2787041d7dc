"""Legacy licensed facilities from a bureau's spreadsheet: facilities licensed before Cradle, keyed by
their licence number. A new number is a facility recorded as `approved` with that licence (and
announced as the review would announce it); a known one is updated where the sheet differs, as
`PATCH` would; the same sheet again changes nothing. Each row is validated by the API's own
request model and applied in a savepoint of its own, so a bad row never leaves half of itself."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.config import RegistrySettings
from services.registry.events import FacilityApproved
from services.registry.models import DirectoryRevision, Facility
from services.registry.schemas import FacilityCreate, FacilityStatus, FacilityUpdate
from services.registry.service.facilities import (
    capacity_of,
    facts,
    record_new_facility,
    update_facility,
)
from shared.errors import CradleError, FieldError, InvalidInput, field_errors
from shared.events.outbox import emit
from shared.identity import Identity, require_bureau
from shared.imports import CellKind, Column, ImportReport, RowVerdict, Table

LICENSE_MAX = 32
COLUMNS = (
    Column(
        "license_no", ("许可证号", "许可证编号", "备案号", "登记证号", "licence_no", "license"), required=True
    ),
    Column("name", ("机构名称", "名称", "托育机构名称"), required=True),
    Column("kind", ("类型", "机构类型")),
    Column("inclusive", ("普惠", "是否普惠"), CellKind.flag),
    Column("has_nursery_class", ("托班", "是否设托班", "nursery_class"), CellKind.flag),
    Column("town_code", ("街镇代码", "街道代码", "乡镇代码")),
    Column("address", ("地址", "详细地址")),
    Column("lat", ("纬度", "latitude"), CellKind.number),
    Column("lon", ("经度", "longitude"), CellKind.number),
    Column("operator_name", ("举办者", "举办单位", "运营方")),
    Column("service_modes", ("服务形式", "服务方式"), CellKind.items),
    Column("capacity_infant", ("乳儿班托位", "托位乳儿", "capacity.infant"), CellKind.integer),
    Column("capacity_toddler", ("托小班托位", "托位托小", "capacity.toddler"), CellKind.integer),
    Column("capacity_preschool", ("托大班托位", "托位托大", "capacity.preschool"), CellKind.integer),
)
CAPACITY = {"infant": "capacity_infant", "toddler": "capacity_toddler", "preschool": "capacity_preschool"}
COMPARED = ("name", "inclusive", "has_nursery_class", "address", "lat", "lon", "operator_name")


def _request_body(values: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in values.items() if k not in CAPACITY.values() and k != "license_no"}
    capacity = {age: values[column] for age, column in CAPACITY.items() if column in values}
    if capacity:
        body["capacity"] = capacity
    return body


def _errors(exc: ValidationError | CradleError) -> list[FieldError]:
    """Each wrong field under its column's name (`capacity.infant` is the column `capacity_infant`)."""
    if isinstance(exc, ValidationError):
        raw = field_errors(exc.errors())
    else:
        raw = exc.errors or [FieldError(field="row", message=exc.detail or exc.title)]
    return [
        FieldError(field=CAPACITY.get(e.field.removeprefix("capacity."), e.field), message=e.message)
        for e in raw
    ]


async def import_facilities(
    *, session: AsyncSession, caller: Identity, table: Table, dry_run: bool, settings: RegistrySettings
) -> ImportReport:
    require_bureau(caller, "EDU", action="Importing licensed facilities")
    if session.get_bind().dialect.name == "sqlite":
        # The transaction's first statement a write, as the workforce's person lock does: SQLite's
        # driver opens a transaction only before a write (else the first row's SAVEPOINT would be
        # the transaction, and releasing it would commit), and the write lock is held before
        # anything is read, so no other writer makes a row's reads stale before its writes.
        await session.execute(update(DirectoryRevision).values(revision=DirectoryRevision.revision))
    verdicts: list[RowVerdict] = []
    seen: dict[str, int] = {}
    for number, values in table.rows:
        license_no = str(values.get("license_no", ""))
        verdict = RowVerdict(row=number, outcome="error", key=license_no or None)
        if len(license_no) > LICENSE_MAX:
            verdict.errors = [
                FieldError(field="license_no", message=f"is longer than {LICENSE_MAX} characters")
            ]
        elif license_no in seen:
            verdict.errors = [FieldError(field="license_no", message=f"repeats row {seen[license_no]}")]
        else:
            seen[license_no] = number
            try:
                async with session.begin_nested():
                    verdict.outcome, verdict.id = await _apply_row(
                        session, caller=caller, license_no=license_no, values=values, settings=settings
                    )
            except (ValidationError, CradleError) as exc:
                verdict.errors = _errors(exc)
        verdicts.append(verdict)
    if dry_run:
        await session.rollback()  # every row was tried for real; a dry run keeps none of it
    return ImportReport.of("facilities", dry_run, verdicts)


async def _apply_row(
    session: AsyncSession,
    *,
    caller: Identity,
    license_no: str,
    values: dict[str, Any],
    settings: RegistrySettings,
) -> tuple[str, str]:
    existing = (
        await session.execute(select(Facility).where(Facility.license_no == license_no).with_for_update())
    ).scalar_one_or_none()
    body = _request_body(values)
    data = FacilityCreate.model_validate(body)
    if existing is None:
        created = await _record_licensed(
            session, caller=caller, data=data, license_no=license_no, settings=settings
        )
        return "create", created.id
    fixed = [
        field
        for field, theirs in (("town_code", data.town_code), ("kind", data.kind.value))
        if getattr(existing, field) != theirs
    ]
    if fixed:  # what no edit changes: a facility does not move town or change kind
        raise InvalidInput(
            "The facility on record with this licence differs in what cannot change.",
            errors=[
                FieldError(field=f, message="differs from the facility on record; it cannot change")
                for f in fixed
            ],
        )
    changes: dict[str, Any] = {
        f: getattr(data, f) for f in COMPARED if getattr(data, f) != getattr(existing, f)
    }
    if sorted(m.value for m in data.service_modes) != sorted(existing.service_modes):
        changes["service_modes"] = data.service_modes
    if data.capacity != capacity_of(existing):
        changes["capacity"] = data.capacity
    if not changes:
        return "skip", existing.id
    updated = await update_facility(
        session=session,
        caller=caller,
        facility=existing,
        data=FacilityUpdate.model_validate(changes),
        if_match=None,
        settings=settings,
    )
    return "update", updated.id


async def _record_licensed(
    session: AsyncSession,
    *,
    caller: Identity,
    data: FacilityCreate,
    license_no: str,
    settings: RegistrySettings,
) -> Facility:
    """A facility licensed before Cradle: on record as approved with its own licence number."""
    facility = await record_new_facility(
        session,
        caller=caller,
        data=data,
        settings=settings,
        status=FacilityStatus.approved,
        reason=f"licensed before Cradle ({license_no}), imported",
        license_no=license_no,
    )
    await emit(session, FacilityApproved(**facts(facility), approved_at=facility.approved_at))
    return facility
