"""Guidance's bodies: families."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.guidance.schemas.common import MAX_CHILD_AGE_YEARS, Phone, PiiView, Relation, Text64, TownCode
from shared.clock import Day, shanghai_today
from shared.partial import PartialUpdate
from shared.scalars import Flag


class GuardianCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    relation: Relation
    name: Text64 | None = None
    phone: Phone | None = Field(default=None, description="Mainland mobile number, 11 digits")


class ChildCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"birth_date": "2025-11-20"}]})

    birth_date: Day

    @field_validator("birth_date")
    @classmethod
    def _a_child_of_guidance_age(cls, value: dt.date) -> dt.date:
        today = shanghai_today()
        if value > today:
            raise ValueError("must not be in the future")
        try:
            oldest = today.replace(year=today.year - MAX_CHILD_AGE_YEARS)
        except ValueError:  # 29 February
            oldest = today.replace(year=today.year - MAX_CHILD_AGE_YEARS, day=28)
        if value < oldest:
            raise ValueError(f"the child is over {MAX_CHILD_AGE_YEARS}: guidance is for children up to 6")
        return value


class FamilyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "town_code": "310104003",
                    "guardians": [{"relation": "mother"}],
                    "children": [{"birth_date": "2025-11-20"}],
                    "newborn": True,
                }
            ]
        },
    )

    town_code: TownCode
    guardians: list[GuardianCreate] = Field(min_length=1, max_length=6)
    children: list[ChildCreate] = Field(min_length=1, max_length=8)
    in_need: Flag = False
    newborn: Flag = False
    grandparent_carers: Flag | None = Field(
        default=None, description="隔代养育; by default true when a grandparent is among the guardians"
    )
    has_handbook: Flag = Field(default=False, description="Holds the 母子健康手册 (T19)")


class FamilyUpdate(PartialUpdate):
    """A partial edit (PATCH) of the family's flags; parents may change only their own
    `grandparent_carers` and `has_handbook`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"in_need": True}]})

    in_need: Flag | None = None
    newborn: Flag | None = None
    grandparent_carers: Flag | None = None
    has_handbook: Flag | None = None

    @model_validator(mode="after")
    def _something_changes(self) -> FamilyUpdate:
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        return self


class GuardianRead(BaseModel):
    id: str
    relation: Relation
    name: str | None
    phone: str | None


class ChildRead(BaseModel):
    id: str
    birth_date: dt.date
    age_months: int


class FamilyRead(BaseModel):
    id: str
    district_code: str
    town_code: str
    in_need: bool
    newborn: bool
    grandparent_carers: bool
    has_handbook: bool
    guardians: list[GuardianRead]
    children: list[ChildRead]
    registered_on: dt.date
    registered_via: str
    linked_parents: int
    pii: PiiView
    version: int


class FamilyCreated(FamilyRead):
    link_code: str | None = Field(
        default=None, description="Shown once: a parent redeems it with POST /v1/families/link"
    )
    link_code_expires_at: dt.datetime | None = None


class LinkCode(BaseModel):
    link_code: str
    link_code_expires_at: dt.datetime


class LinkRedeem(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"code": "7KQ2-9XPM"}]})

    code: Text64


class FamilySummary(BaseModel):
    id: str
    district_code: str
    town_code: str
    in_need: bool
    newborn: bool
    grandparent_carers: bool
    has_handbook: bool
    registered_on: dt.date
