"""Guidance's bodies: sessions."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from services.guidance.schemas.common import (
    DistrictCode,
    Note300,
    Note2000,
    SessionKind,
    SessionLevel,
    Text200,
    Uuid,
    _distinct,
)
from shared.clock import Timestamp
from shared.scalars import Flag, Integer


class SessionCreate(BaseModel):
    """A city-level session needs no place; a district-level one names its district (or a place in
    it); a station-level one names its guidance station."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "level": "station",
                    "kind": "parenting_station_event",
                    "title": "婴幼儿睡眠讲座",
                    "starts_at": "2026-03-14T09:30:00+08:00",
                    "capacity": 30,
                    "place_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                }
            ]
        },
    )

    level: SessionLevel
    kind: SessionKind
    title: Text200 | None = Field(default=None, description="By default the kind's Chinese name")
    description: Note2000 = ""
    starts_at: Timestamp
    ends_at: Timestamp | None = None
    capacity: Integer = Field(ge=1, le=100_000)
    place_id: Uuid | None = Field(default=None, validate_default=True)
    district_code: DistrictCode | None = Field(default=None, validate_default=True)
    venue: Note300 = ""

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _with_offset(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give the time with its offset, e.g. 2026-12-05T09:30:00+08:00")
        # Stored as UTC: SQLite keeps no offset.
        return value.astimezone(dt.UTC) if value is not None else None

    @field_validator("ends_at")
    @classmethod
    def _ends_after_start(cls, value: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
        starts = info.data.get("starts_at")
        if value is not None and isinstance(starts, dt.datetime) and value <= starts:
            raise ValueError("must be after starts_at")
        return value

    @field_validator("place_id")
    @classmethod
    def _station_sessions_name_their_station(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("level") == SessionLevel.station:
            raise ValueError("a station-level session names its guidance station")
        return value

    @field_validator("district_code")
    @classmethod
    def _district_sessions_name_their_district(cls, value: str | None, info: ValidationInfo) -> str | None:
        if (
            value is None
            and info.data.get("level") == SessionLevel.district
            and not info.data.get("place_id")
        ):
            raise ValueError("a district-level session names its district (or a place in it)")
        return value


class SessionRead(BaseModel):
    id: str
    level: SessionLevel
    kind: SessionKind
    title: str
    description: str
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    place_id: str | None
    district_code: str | None
    town_code: str | None
    venue: str
    capacity: int
    booked: int
    places_left: int
    status: str
    version: int


class BookingCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"family_id": "9b2e4c1a-7d3f-4e8a-b5c6-1f0a2d3e4b5c"}]},
    )

    family_id: Uuid | None = Field(
        default=None, description="Parents book for their linked family and may leave it out"
    )


class BookingRead(BaseModel):
    id: str
    session_id: str
    family_id: str
    status: str
    booked_at: dt.datetime
    cancelled_at: dt.datetime | None
    attended: bool


class FamilyBookingRead(BookingRead):
    session: SessionRead


class AttendanceCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"family_ids": ["9b2e4c1a-7d3f-4e8a-b5c6-1f0a2d3e4b5c"], "attended": True}]
        },
    )

    family_ids: list[Uuid] = Field(min_length=1, max_length=500)
    attended: Flag = True

    @field_validator("family_ids")
    @classmethod
    def _once_each(cls, ids: list[str]) -> list[str]:
        return _distinct(ids)


class AttendanceRead(BaseModel):
    session_id: str
    recorded: int
    attended: int
