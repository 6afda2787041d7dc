"""Checks of an ID number, or a batch of them, against the bans."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from services.workforce.schemas.bans import BanRole
from services.workforce.schemas.common import RawIdNumber
from shared.errors import FieldError


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
