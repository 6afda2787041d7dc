"""Bans (从业禁止), their rescission, and the notices to facilities employing the banned."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from services.workforce.schemas.common import PiiView, RawIdNumber, Text100, Text1000, Uuid, valid_id_number


class BanRole(StrEnum):
    abuser = "abuser"
    responsible_manager = "responsible_manager"


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

    _valid_id = field_validator("id_number")(valid_id_number)


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
