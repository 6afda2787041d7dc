"""Employments: a hire, its changes, the district's decision on a suspension, its end."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.workforce.schemas.common import AgeClass, Note300, Text1000, Uuid
from shared.clock import Day
from shared.scalars import Flag


class Role(StrEnum):
    infant_carer = "infant_carer"  # 育婴员
    childcare_worker = "childcare_worker"  # 保育员 / 保育师
    health_worker = "health_worker"  # 保健员
    teacher = "teacher"  # 教师
    director = "director"  # 负责人
    other = "other"  # cooks, cleaners, guards: no certificate, not counted as carers


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
