"""workforce's request and reply shapes."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.clock import Day
from shared.errors import FieldError
from shared.pii import validate_national_id
from shared.scalars import Flag, Integer, Number
from shared.text import line, text

# Text as every service takes it (shared/text.py): `Text*` one line, 1–n characters; `Text1000` and
# `Note*` free text (`Note*` may be empty).
Text64 = line(64)
Text100 = line(100)
Text200 = line(200)
Text300 = line(300)
Text1000 = text(1000, min_length=1)
Note300 = text(300)
Note1000 = text(1000)
Uuid = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
# Bounded before validation so an absurd body never reaches the checks; the checks say what is wrong.
RawIdNumber = Annotated[str, StringConstraints(max_length=64)]


class Role(StrEnum):
    infant_carer = "infant_carer"  # 育婴员
    childcare_worker = "childcare_worker"  # 保育员 / 保育师
    health_worker = "health_worker"  # 保健员
    teacher = "teacher"  # 教师
    director = "director"  # 负责人
    other = "other"  # cooks, cleaners, guards: no certificate, not counted as carers


class CertificateType(StrEnum):
    infant_carer = "infant_carer"
    childcare_worker = "childcare_worker"
    health_worker = "health_worker"
    teacher = "teacher"
    director = "director"
    health = "health"  # 健康合格证明: every role, valid a year


class AgeClass(StrEnum):
    infant = "infant"
    toddler = "toddler"
    preschool = "preschool"


class ContractType(StrEnum):
    labour_contract = "labour_contract"
    part_time = "part_time"
    dispatched = "dispatched"
    service_agreement = "service_agreement"
    other = "other"


class EndReason(StrEnum):
    resigned = "resigned"
    dismissed = "dismissed"
    contract_expired = "contract_expired"
    transferred = "transferred"
    retired = "retired"
    other = "other"


class TrainingCategory(StrEnum):
    skills = "skills"
    ethics = "ethics"
    other = "other"


class BanRole(StrEnum):
    abuser = "abuser"
    responsible_manager = "responsible_manager"


class PiiView(StrEnum):
    masked = "masked"
    unmasked = "unmasked"


def _id_number(value: str) -> str:
    return validate_national_id(value)


class PractitionerCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"id_number": "11010519491231002X", "name": "张丽"}]}
    )

    id_number: RawIdNumber = Field(
        description="居民身份证号, GB 11643: 18 characters, check character X upper-case"
    )
    name: Text100
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9-]{5,19}$")] | None = None
    nationality: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = Field(
        default="CN", description="ISO 3166-1 alpha-2"
    )
    work_permit_no: Text64 | None = None

    _valid_id = field_validator("id_number")(_id_number)


class PractitionerRead(BaseModel):
    id: str
    name: str
    id_number: str
    phone: str | None
    nationality: str
    work_permit_no: str | None
    grade: int | None
    pii: PiiView
    version: int
    created_at: dt.datetime


class GradeCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"level": 3, "reason": "年度考核优秀"}]}
    )

    level: Integer = Field(ge=1, le=5, description="岗位分级 level, 1 (entry) to 5 (senior)")
    reason: Text300


class GradeRead(BaseModel):
    level: int
    reason: str
    changed_by: str
    changed_at: dt.datetime


class CertificateCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "infant_carer",
                    "number": "3101042026000173",
                    "issuer": "上海市人力资源和社会保障局",
                    "issued_on": "2025-06-30",
                    "expires_on": "2028-06-30",
                }
            ]
        },
    )

    type: CertificateType
    number: Text64
    issuer: Text200
    issued_on: Day
    expires_on: Day | None = Field(
        default=None,
        description="required, except for a health certificate: a year after issued_on when absent",
    )


class CertificateRead(BaseModel):
    id: str
    practitioner_id: str
    type: CertificateType
    number: str
    issuer: str
    issued_on: dt.date
    expires_on: dt.date
    valid_today: bool


class TrainingCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"category": "ethics", "hours": 8, "date": "2026-03-02", "provider": "上海开放大学"}]
        },
    )

    category: TrainingCategory
    hours: Number = Field(gt=0, le=200, description="hours of this course or session")
    date: Day
    provider: Text200


class TrainingRead(BaseModel):
    id: str
    practitioner_id: str
    category: TrainingCategory
    hours: float
    date: dt.date
    provider: str


class TrainingTotals(BaseModel):
    practitioner_id: str
    year: int
    skills_hours: float
    ethics_hours: float
    other_hours: float
    meets: bool


class CertificationCounts(BaseModel):
    employments: int
    certified: int


class CertificationCompliance(BaseModel):
    """持证上岗 on one day: employments in roles that need a certificate, and how many are covered."""

    on: dt.date
    employments: int
    certified: int
    rate: float | None
    districts: dict[str, CertificationCounts]


class TrainingCompliance(BaseModel):
    year: int
    facility_id: str | None
    required_skills_hours: float
    required_ethics_hours: float
    practitioners: int
    meeting: int
    items: list[TrainingTotals]
    next_cursor: str | None = None


class EmploymentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "practitioner_id": "9b2e4c1a-7d3f-4e8a-b5c6-1f0a2d3e4b5c",
                    "facility_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                    "role": "infant_carer",
                    "start_date": "2026-03-02",
                }
            ]
        },
    )

    practitioner_id: Uuid
    facility_id: Uuid
    role: Role
    start_date: Day
    age_class: AgeClass | None = Field(default=None, description="the class a carer works with (ratios)")
    contract_type: ContractType = ContractType.labour_contract
    social_insurance_paid: Flag = Field(default=False, description="社保 paid by the employer")
    social_insurance_since: Day | None = Field(default=None, description="社保 paid since (when paid)")


class EmploymentUpdate(BaseModel):
    """A change of contract or of social insurance; fields left out stay as they are."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "contract_type": "labour_contract",
                    "social_insurance_paid": True,
                    "social_insurance_since": "2026-04-01",
                }
            ]
        },
    )

    contract_type: ContractType | None = None
    social_insurance_paid: Flag | None = None
    social_insurance_since: Day | None = None
    note: Note300 | None = None


class EmploymentDecision(BaseModel):
    """The district's decision on an employment suspended by a flagged background check."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"decision": "end", "note": "公安回函有不宜从事托育工作的记录"}]},
    )

    decision: Literal["end", "reinstate"]
    note: Text1000


class EmploymentChangeRead(BaseModel):
    kind: str = Field(
        description="provisional_cleared, suspended, ended_after_suspension, reinstated, "
        "health_flagged, health_restored, updated"
    )
    changes: dict[str, list[str | bool | None]] = Field(description="field: [before, after]")
    note: str | None
    changed_by: str
    changed_at: dt.datetime


class EmploymentEnd(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"end_date": "2026-06-30", "reason": "resigned"}]}
    )

    end_date: Day
    reason: EndReason
    note: Note300 | None = None


class EmploymentRead(BaseModel):
    id: str
    practitioner_id: str
    practitioner_name: str
    facility_id: str
    district_code: str
    role: str
    age_class: str | None
    contract_type: str
    social_insurance_paid: bool
    start_date: dt.date
    end_date: dt.date | None
    end_reason: str | None
    status: Literal["active", "ended"]
    standing: Literal["provisional", "cleared", "suspended"] = Field(
        description="provisional while its background check (or health certificate) is pending, "
        "suspended on a flagged check until the district decides; only cleared ones count in ratios"
    )
    background_check_id: str | None
    health_certificate_pending: bool
    health_flagged_on: dt.date | None = Field(
        description="when its holder's health certificate was found expired"
    )
    suspended_at: dt.datetime | None
    social_insurance_since: dt.date | None
    version: int


class BackgroundCheckCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"employment_id": "9b2e4c1a-7d3f-4e8a-b5c6-1f0a2d3e4b5c", "reason": "hire"}]
        },
    )

    employment_id: Uuid | None = None
    reason: Literal["hire", "other"] = "hire"


class BackgroundCheckAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"result": "clear"}]})

    result: Literal["clear", "flagged"]
    note: Note1000 | None = None


class BackgroundCheckResolve(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"note": "公安回函无违法记录"}]}
    )

    note: Text1000


class BackgroundCheckRead(BaseModel):
    id: str
    practitioner_id: str
    employment_id: str | None
    reason: str
    status: Literal["pending", "clear", "flagged", "resolved"]
    requested_at: dt.datetime
    answered_at: dt.datetime | None
    answer_note: str | None
    resolved_at: dt.datetime | None
    resolution_note: str | None


class BanCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id_number": "11010519491231002X",
                    "name": "张丽",
                    "reason": "虐待幼儿，情节严重",
                    "decision_ref": "沪教托〔2026〕12号",
                    "role": "abuser",
                }
            ]
        },
    )

    id_number: RawIdNumber
    name: Text100
    reason: Text1000
    decision_ref: Text100
    incident_id: Uuid | None = None
    role: BanRole

    _valid_id = field_validator("id_number")(_id_number)


class BanRescind(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"reason": "行政复议撤销原决定", "authority_ref": "沪府复〔2026〕5号"}]
        },
    )

    reason: Text1000
    authority_ref: Text100


class RescissionRead(BaseModel):
    reason: str
    authority_ref: str
    rescinded_by: str
    rescinded_at: dt.datetime


class BanNotificationRead(BaseModel):
    ban_id: str
    facility_id: str
    district_code: str
    employment_id: str
    notified_at: dt.datetime
    acknowledge_by: dt.datetime
    acknowledged_at: dt.datetime | None
    escalated_at: dt.datetime | None


class BanRead(BaseModel):
    id: str
    name: str
    id_number: str
    pii: PiiView
    practitioner_id: str | None
    reason: str
    decision_ref: str
    role: BanRole
    incident_id: str | None
    status: Literal["active", "rescinded"]
    issued_by: str
    issued_at: dt.datetime
    rescission: RescissionRead | None
    notifications: list[BanNotificationRead]


class BanCheckRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"id_number": "11010519491231002X"}]}
    )

    # Validated by the service, not here, so that an invalid number is still an audited check.
    id_number: RawIdNumber


class BanSummary(BaseModel):
    ban_id: str
    role: BanRole
    decision_ref: str
    issued_at: dt.datetime


class BanCheckResult(BaseModel):
    banned: bool
    bans: list[BanSummary]
    checked_at: dt.datetime


MAX_BATCH_CHECKS = 1000


class BanCheckBatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"id_numbers": ["11010519491231002X", "310104198803150021"]}]},
    )

    # Each validated by the service, as the single check's: an invalid one is still an audited check.
    id_numbers: list[RawIdNumber] = Field(min_length=1, max_length=MAX_BATCH_CHECKS)


class BanCheckBatchItem(BaseModel):
    index: int = Field(description="Position of the ID number in the request's `id_numbers`")
    id_number_masked: str
    banned: bool
    bans: list[BanSummary]


class RejectedIdNumber(BaseModel):
    index: int
    errors: list[FieldError]


class BanCheckBatchResult(BaseModel):
    items: list[BanCheckBatchItem] = Field(description="Every valid ID number, in request order")
    rejected: list[RejectedIdNumber] = Field(description="Every invalid one, by index (each audited too)")
    checked_at: dt.datetime


class AgeClassStaffing(BaseModel):
    age_class: AgeClass
    children: int
    carers: int
    ratio: str = Field(description="carers:children, e.g. 1:3")
    carers_required: int
    met: bool


class StaffingRead(BaseModel):
    facility_id: str
    name: str
    district_code: str
    classes: list[AgeClassStaffing]
    unassigned_carers: int = Field(description="carers in caring roles with no age class recorded")
    met: bool


class RecheckSummary(BaseModel):
    year: int
    employed: int
    rechecked: int
    banned_found: int
    background_checks_opened: int
    background_checks_pending: int
    background_checks_clear: int
    background_checks_flagged: int
