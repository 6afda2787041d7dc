"""Background checks: a request, the police's answer, the district's resolution of a flagged one."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict

from services.workforce.schemas.common import Note1000, Text1000, Uuid


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
