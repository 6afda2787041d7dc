"""Alerts and their transitions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.text import text


class AlertRead(BaseModel):
    id: str
    facility_id: str
    district_code: str
    camera_id: str | None
    type: str
    severity: str
    status: str
    source: str
    count: int
    first_at: datetime
    last_at: datetime
    raised_at: datetime
    details: dict[str, Any]
    incident_id: str | None
    version: int


class AlertTransitionRead(BaseModel):
    from_status: str | None
    to_status: str
    actor: str
    note: str
    at: datetime


class AlertDetail(AlertRead):
    history: list[AlertTransitionRead]


class AlertAction(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"note": "已调阅录像，情况属实"}]}
    )

    note: text(2000) = ""
