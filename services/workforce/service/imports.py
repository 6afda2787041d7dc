"""A facility's staff roster from an operator's spreadsheet: each row one person (by ID number), with
optionally a certificate, a health certificate (健康合格证明) and an employment at one of the caller's
facilities. Each part goes through the function its API path calls (registration, certificates,
hiring), so the same checks, the same encryption of ID numbers and phones and the same events
follow; each part is keyed by what makes it the same (the ID number; the certificate's type and
number; an active employment in the same facility and role), so the same sheet twice creates nothing
new. Each row is applied in a savepoint of its own: a row with an error leaves nothing, except what
the API itself keeps of a refused hire (the attempt and its `hire.blocked` event)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import false, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.config import HEALTH_CERTIFICATE as HEALTH
from services.workforce.models import Certificate, Employment, Person, Practitioner
from services.workforce.schemas import CertificateCreate, EmploymentCreate, PractitionerCreate
from services.workforce.service import hiring, practitioners
from services.workforce.service.common import Workforce
from shared.errors import CradleError, FieldError, field_errors
from shared.identity import Identity
from shared.imports import CellKind, Column, ImportReport, RowVerdict, Table
from shared.pii import mask

COLUMNS = (
    Column("id_number", ("身份证号", "身份证号码", "证件号码", "公民身份号码"), required=True),
    Column("name", ("姓名",), required=True),
    Column("phone", ("手机", "手机号", "手机号码", "联系电话", "电话")),
    Column("nationality", ("国籍",)),
    Column("work_permit_no", ("工作许可证号", "外国人工作许可证号")),
    Column("certificate_type", ("证书类型", "资格证书类型")),
    Column("certificate_number", ("证书编号", "证书号")),
    Column("certificate_issuer", ("发证机关", "发证单位")),
    Column("certificate_issued_on", ("发证日期",), CellKind.day),
    Column("certificate_expires_on", ("有效期至", "证书有效期至", "到期日期"), CellKind.day),
    Column("health_certificate_number", ("健康证编号", "健康合格证明编号")),
    Column("health_certificate_issuer", ("健康证发证机构", "健康合格证明发证机构")),
    Column("health_certificate_issued_on", ("健康证发证日期", "健康合格证明发证日期"), CellKind.day),
    Column("facility_id", ("机构ID", "托育机构ID", "机构编号")),
    Column("role", ("岗位",)),
    Column("age_class", ("班级", "年龄段")),
    Column("start_date", ("入职日期", "到岗日期"), CellKind.day),
    Column("contract_type", ("用工形式", "合同类型")),
    Column("social_insurance_paid", ("缴纳社保", "社保", "是否缴纳社保"), CellKind.flag),
)
PERSON = ("id_number", "name", "phone", "nationality", "work_permit_no")
CERTIFICATE = {
    "certificate_type": "type",
    "certificate_number": "number",
    "certificate_issuer": "issuer",
    "certificate_issued_on": "issued_on",
    "certificate_expires_on": "expires_on",
}
HEALTH_CERTIFICATE = {
    "health_certificate_number": "number",
    "health_certificate_issuer": "issuer",
    "health_certificate_issued_on": "issued_on",
}
EMPLOYMENT = ("facility_id", "role", "age_class", "start_date", "contract_type", "social_insurance_paid")


class RowError(Exception):
    """A row's part that cannot be applied, its fields named by the sheet's columns."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(", ".join(e.field for e in errors))
        self.errors = errors


def _validated(model: type[BaseModel], body: dict[str, Any], columns: dict[str, str]) -> Any:
    """The row's part as the API's request model reads it; a wrong field named by its column."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RowError(
            [
                FieldError(field=columns.get(e.field, e.field), message=e.message)
                for e in field_errors(exc.errors())
            ]
        ) from None


def _refusal(exc: CradleError, field: str, columns: dict[str, str] | None = None) -> RowError:
    named = [FieldError(field=(columns or {}).get(e.field, e.field), message=e.message) for e in exc.errors]
    return RowError(named or [FieldError(field=field, message=exc.detail or exc.title)])


async def import_roster(
    *, session: AsyncSession, workforce: Workforce, caller: Identity, table: Table, dry_run: bool
) -> ImportReport:
    if session.get_bind().dialect.name == "sqlite":
        # SQLite's driver opens a transaction only before a write: without one, the first row's
        # SAVEPOINT would be the transaction, and releasing it would commit (a dry run included).
        await session.execute(update(Person).where(false()).values(id_hash=Person.id_hash))
    verdicts: list[RowVerdict] = []
    for number, values in table.rows:
        id_number = str(values.get("id_number", ""))
        verdict = RowVerdict(row=number, outcome="error", key=mask(id_number) if id_number else None)
        try:
            async with session.begin_nested():
                try:
                    verdict.outcome, verdict.id = await _apply_row(
                        session, workforce=workforce, caller=caller, values=values
                    )
                except _Refused as refused:
                    # The API keeps a refused hire (the attempt, `hire.blocked`): so does the import.
                    verdict.errors = refused.errors
        except RowError as exc:
            verdict.errors = exc.errors
        verdicts.append(verdict)
    if dry_run:
        await session.rollback()  # every row was tried for real; a dry run keeps none of it
    return ImportReport.of("roster", dry_run, verdicts)


class _Refused(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(", ".join(e.field for e in errors))
        self.errors = errors


async def _apply_row(
    session: AsyncSession, *, workforce: Workforce, caller: Identity, values: dict[str, Any]
) -> tuple[str, str]:
    """`create` when any part of the row was new, `skip` when every part was already on record."""
    person = _validated(PractitionerCreate, {k: values[k] for k in PERSON if k in values}, {})
    certificates: list[tuple[CertificateCreate, dict[str, str]]] = []
    for columns, fixed in ((CERTIFICATE, {}), (HEALTH_CERTIFICATE, {"type": HEALTH})):
        if any(column in values for column in columns):
            body = {field: values[column] for column, field in columns.items() if column in values} | fixed
            named = {v: k for k, v in columns.items()}
            certificates.append((_validated(CertificateCreate, body, named), named))
    try:
        registration = await practitioners.register(
            session=session, workforce=workforce, caller=caller, data=person
        )
    except CradleError as exc:
        raise _refusal(exc, "id_number") from None
    practitioner = registration.practitioner
    created = registration.created
    for certificate, named in certificates:
        created |= await _certificate(
            session,
            workforce=workforce,
            caller=caller,
            practitioner=practitioner,
            data=certificate,
            named=named,
        )
    if any(column in values for column in EMPLOYMENT):
        body = {k: values[k] for k in EMPLOYMENT if k in values} | {"practitioner_id": practitioner.id}
        employment = _validated(EmploymentCreate, body, {"practitioner_id": "id_number"})
        created |= await _employment(session, workforce=workforce, caller=caller, data=employment)
    return ("create" if created else "skip"), practitioner.id


async def _certificate(
    session: AsyncSession,
    *,
    workforce: Workforce,
    caller: Identity,
    practitioner: Practitioner,
    data: CertificateCreate,
    named: dict[str, str],
) -> bool:
    recorded = await session.execute(
        select(Certificate.id).where(
            Certificate.practitioner_id == practitioner.id,
            Certificate.type == data.type.value,
            Certificate.number == data.number,
        )
    )
    if recorded.first() is not None:
        return False
    try:
        await practitioners.add_certificate(
            session=session, workforce=workforce, caller=caller, practitioner=practitioner, data=data
        )
    except CradleError as exc:
        raise _refusal(exc, named["number"], named) from None
    return True


async def _employment(
    session: AsyncSession, *, workforce: Workforce, caller: Identity, data: EmploymentCreate
) -> bool:
    active = await session.execute(
        select(Employment.id).where(
            Employment.practitioner_id == data.practitioner_id,
            Employment.facility_id == data.facility_id,
            Employment.role == data.role.value,
            Employment.status == hiring.ACTIVE,
        )
    )
    if active.first() is not None:
        return False
    try:
        outcome = await hiring.hire(session=session, workforce=workforce, caller=caller, data=data)
    except CradleError as exc:
        raise _refusal(exc, "facility_id", {"practitioner_id": "id_number"}) from None
    if isinstance(outcome, hiring.HireRefused):
        raise _Refused(
            [FieldError(field="id_number", message=outcome.problem.detail or outcome.problem.title)]
        )
    return True
