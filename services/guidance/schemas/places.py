"""Guidance's bodies: places."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from services.guidance.schemas.common import TOWN_PLACES, DistrictCode, Note300, PlaceKind, Text200, TownCode
from shared.clock import Day, shanghai_today


class StationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "天平街道育儿指导站",
                    "town_code": "310104003",
                    "address": "天平路 120 号",
                    "opened_on": "2026-03-02",
                }
            ]
        },
    )

    name: Text200
    town_code: TownCode
    address: Note300 = ""
    opened_on: Day = Field(default_factory=shanghai_today, description="The day it opened (default today)")

    @field_validator("opened_on")
    @classmethod
    def _not_in_the_future(cls, value: dt.date) -> dt.date:
        if value > shanghai_today():
            raise ValueError("must not be in the future")
        return value


class PlaceCreate(BaseModel):
    """Any kind of place. Every kind but `development_base` is tied to a 街镇; a base names its
    district, and may name a 街镇 too."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "guidance_station",
                    "name": "天平街道育儿指导站",
                    "town_code": "310104003",
                    "opened_on": "2026-03-02",
                }
            ]
        },
    )

    kind: PlaceKind
    name: Text200
    town_code: TownCode | None = Field(default=None, validate_default=True)
    district_code: DistrictCode | None = Field(default=None, validate_default=True)
    address: Note300 = ""
    opened_on: Day = Field(description="The day it opened, or was designated (child-friendly sites)")

    @field_validator("town_code")
    @classmethod
    def _town_if_tied_to_one(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if value is None and kind in TOWN_PLACES:
            raise ValueError(f"a {kind.value} is tied to a 街镇: give its town_code")
        return value

    @field_validator("district_code")
    @classmethod
    def _district_of_a_base(cls, value: str | None, info: ValidationInfo) -> str | None:
        if (
            value is None
            and info.data.get("kind") == PlaceKind.development_base
            and not info.data.get("town_code")
        ):
            raise ValueError("a development base names its district (or a town_code)")
        return value

    @field_validator("opened_on")
    @classmethod
    def _not_in_the_future(cls, value: dt.date) -> dt.date:
        if value > shanghai_today():
            raise ValueError("must not be in the future")
        return value


class PlaceRead(BaseModel):
    id: str
    kind: PlaceKind
    name: str
    district_code: str
    town_code: str | None
    address: str
    opened_on: dt.date
    closed_on: dt.date | None
    version: int
    created_at: dt.datetime
