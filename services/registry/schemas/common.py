"""What registry's request and reply bodies share: field types and enumerations."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.scalars import Integer
from shared.text import line, text

# Shanghai's bounding box (WGS-84), with a margin for 崇明's islands and 金山's coast.
SHANGHAI_LAT = (30.66, 31.88)
SHANGHAI_LON = (120.85, 122.20)
AGE_CLASSES = ("infant", "toddler", "preschool")
DEPARTMENTS = ("EDU", "HEALTH", "FIRE", "SAMR", "POLICE")

Text200 = line(200)
Address = line(300)
Reason = text(2000, min_length=1)
Note2000 = text(2000)
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d\Z")


class FacilityKind(StrEnum):
    kindergarten = "kindergarten"
    community_point = "community_point"
    workplace = "workplace"
    private = "private"


class ServiceMode(StrEnum):
    full_day = "full_day"
    half_day = "half_day"
    hourly = "hourly"


class FacilityStatus(StrEnum):
    submitted = "submitted"
    approved = "approved"
    rejected = "rejected"
    suspended = "suspended"
    closed = "closed"


class AgeClass(StrEnum):
    infant = "infant"
    toddler = "toddler"
    preschool = "preschool"


class PerAgeClass(BaseModel):
    model_config = ConfigDict(extra="forbid")

    infant: Integer = Field(ge=0, le=1000, description="乳儿班, 6–12 months")
    toddler: Integer = Field(ge=0, le=1000, description="托小班, 12–24 months")
    preschool: Integer = Field(ge=0, le=1000, description="托大班, 24–36 months")


class Capacity(PerAgeClass):
    pass


class Classes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    infant: Integer = Field(default=0, ge=0, le=50)
    toddler: Integer = Field(default=0, ge=0, le=50)
    preschool: Integer = Field(default=0, ge=0, le=50)


class OpeningHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: list[Integer] = Field(min_length=1, max_length=7, description="1 = Monday … 7 = Sunday")
    opens: str = Field(description="HH:MM")
    closes: str = Field(description="HH:MM")

    @field_validator("days")
    @classmethod
    def _weekdays(cls, days: list[int]) -> list[int]:
        if any(d < 1 or d > 7 for d in days) or len(set(days)) != len(days):
            raise ValueError("days are distinct numbers from 1 (Monday) to 7 (Sunday)")
        return sorted(days)

    @field_validator("opens", "closes")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("a time of day as HH:MM")
        return value

    @model_validator(mode="after")
    def _opens_before_closing(self) -> OpeningHours:
        if self.opens >= self.closes:
            raise ValueError("opens must be before closes")
        return self


DEFAULT_HOURS = [OpeningHours(days=[1, 2, 3, 4, 5], opens="08:00", closes="18:00")]
