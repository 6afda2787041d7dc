"""Guidance's bodies: resources."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from services.guidance.schemas.common import (
    MAX_AGE_MONTHS,
    Audience,
    Note2000,
    ResourceKind,
    Text200,
    Topic,
    Url,
    _distinct,
)
from shared.scalars import Integer


class ResourceCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "article",
                    "title": "6—12 月龄辅食添加",
                    "age_from_months": 6,
                    "age_to_months": 12,
                    "topics": ["feeding"],
                }
            ]
        },
    )

    kind: ResourceKind
    title: Text200
    summary: Note2000 = ""
    url: Url | None = None
    age_from_months: Integer = Field(ge=0, le=MAX_AGE_MONTHS)
    age_to_months: Integer = Field(ge=0, le=MAX_AGE_MONTHS)
    topics: list[Topic] = Field(default_factory=list, max_length=10)
    audience: Audience = Audience.parents

    @field_validator("age_to_months")
    @classmethod
    def _not_inverted(cls, value: int, info: ValidationInfo) -> int:
        start = info.data.get("age_from_months")
        if isinstance(start, int) and value < start:
            raise ValueError(f"must not be below age_from_months ({start})")
        return value

    @field_validator("topics")
    @classmethod
    def _once_each(cls, topics: list[str]) -> list[str]:
        return _distinct(topics)


class ResourceRead(BaseModel):
    id: str
    kind: ResourceKind
    title: str
    summary: str
    url: str | None
    age_from_months: int
    age_to_months: int
    topics: list[str]
    audience: Audience
    published_at: dt.datetime
    pushed_families: int
    version: int


class FeedItem(ResourceRead):
    relevance: int
    for_child_ids: list[str]
