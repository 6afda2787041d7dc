"""A practitioner's certificates, and how many employments are covered by one (持证上岗)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from services.workforce.schemas.common import Text64, Text200
from shared.clock import Day


class CertificateType(StrEnum):
    infant_carer = "infant_carer"
    childcare_worker = "childcare_worker"
    health_worker = "health_worker"
    teacher = "teacher"
    director = "director"
    health = "health"  # 健康合格证明: every role, valid a year


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
