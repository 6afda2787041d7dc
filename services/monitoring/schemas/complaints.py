"""Complaints (投诉): lodged by a parent, the public or a bureau; acknowledged and answered by the
facility's district; followed by an anonymous complainant with its reference and code."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.monitoring.schemas.common import Text, Uuid
from shared.text import FreeText


class ComplaintCategory(StrEnum):
    care = "care"  # 保育照护
    safety = "safety"  # 安全
    health_hygiene = "health_hygiene"  # 卫生保健
    food = "food"  # 膳食
    fees = "fees"  # 收费
    staff_conduct = "staff_conduct"  # 从业人员言行
    premises = "premises"  # 场地设施
    other = "other"


class ComplaintOutcome(StrEnum):
    founded = "founded"  # 属实
    partly_founded = "partly_founded"  # 部分属实
    unfounded = "unfounded"  # 不属实


class ComplaintStatus(StrEnum):
    lodged = "lodged"
    acknowledged = "acknowledged"
    escalated = "escalated"  # a deadline passed: the city looks on, the district still answers
    answered = "answered"


class ComplainantKind(StrEnum):
    parent = "parent"
    public = "public"
    bureau = "bureau"


class ComplainantView(StrEnum):
    masked = "masked"
    unmasked = "unmasked"
    withheld = "withheld"  # the facility's operator never learns who complained


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50), FreeText]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 -]{4,18}[0-9]$")]
# References and codes as the complainant types them back: case and dashes do not matter.
Reference = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9-]{6,20}$")]
Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9 -]{8,24}$")]


class ComplaintCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "facility_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                    "category": "food",
                    "description": "连续一周午餐没有按公示食谱提供",
                    "complainant_name": "王女士",
                    "complainant_phone": "13800138000",
                }
            ]
        },
    )

    facility_id: Uuid
    category: ComplaintCategory
    description: Annotated[Text, Field(max_length=4000)]
    complainant_name: Name | None = Field(
        default=None, description="Optional; sealed, and shown only to the handling district"
    )
    complainant_phone: Phone | None = Field(
        default=None, description="Optional, for the district to call back; sealed like the name"
    )


class ComplaintReceipt(BaseModel):
    """What the complainant keeps. `code` is given once, to those without an account (the public,
    and a bureau lodging for a caller of its hotline): with `reference` it follows the complaint."""

    id: str
    reference: str
    code: str | None
    status: str
    lodged_at: datetime
    acknowledge_due_at: datetime
    answer_due_at: datetime


class ComplaintLookup(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reference": "TS2026-7K3M9Q2X", "code": "H4WD-9RTN-QX2P"}]},
    )

    reference: Reference
    code: Code


class ComplaintAnswer(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "outcome": "partly_founded",
                    "answer": "经核查，该园5月12日至16日午餐未按公示食谱提供，已责令整改并公示。",
                }
            ]
        },
    )

    outcome: ComplaintOutcome
    answer: Annotated[Text, Field(max_length=4000)]


class ComplaintProgress(BaseModel):
    """Where a complaint stands, for its complainant: no one's identity, the district's answer."""

    reference: str
    facility_id: str
    facility_name: str
    category: str
    status: str
    lodged_at: datetime
    acknowledge_due_at: datetime
    answer_due_at: datetime
    acknowledged_at: datetime | None
    outcome: str | None
    answer: str | None
    answered_at: datetime | None


class Complainant(BaseModel):
    name: str | None
    phone: str | None


class ComplaintRead(ComplaintProgress):
    id: str
    district_code: str
    description: str
    complainant_kind: str | None = Field(description="Withheld (null) from the facility's operator")
    complainant: Complainant | None = Field(description="Withheld (null) from the facility's operator")
    pii: ComplainantView
    escalated_at: datetime | None = Field(description="When a deadline first passed unmet")
    version: int
