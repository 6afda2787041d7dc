"""Practitioners and their grades."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from services.workforce.schemas.common import PiiView, RawIdNumber, Text64, Text100, Text300, valid_id_number
from shared.scalars import Integer


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

    _valid_id = field_validator("id_number")(valid_id_number)


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
