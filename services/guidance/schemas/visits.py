"""Guidance's bodies: visits."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.guidance.schemas.common import Note2000, Text100, Uuid, VisitTopic, _distinct
from shared.clock import Day, shanghai_today


class HomeVisitCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "family_id": "9b2e4c1a-7d3f-4e8a-b5c6-1f0a2d3e4b5c",
                    "visited_on": "2026-03-02",
                    "visitor": "王芳",
                    "topics": ["newborn_visit"],
                    "notes": "家长咨询辅食添加",
                }
            ]
        },
    )

    family_id: Uuid
    visited_on: Day
    visitor: Text100
    topics: list[VisitTopic] = Field(min_length=1, max_length=10)
    notes: Note2000 = ""

    @field_validator("visited_on")
    @classmethod
    def _not_in_the_future(cls, value: dt.date) -> dt.date:
        if value > shanghai_today():
            raise ValueError("must not be in the future")
        return value

    @field_validator("topics")
    @classmethod
    def _once_each(cls, topics: list[VisitTopic]) -> list[VisitTopic]:
        _distinct([t.value for t in topics])
        return topics


class HomeVisitRead(BaseModel):
    id: str
    family_id: str
    district_code: str
    visited_on: dt.date
    visitor: str
    topics: list[VisitTopic]
    notes: str
    recorded_at: dt.datetime
