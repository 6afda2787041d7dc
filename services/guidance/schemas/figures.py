"""Guidance's bodies: figures."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from services.guidance.schemas.common import Text200
from shared.scalars import Integer


class AreaFigures(BaseModel):
    """Numerators with their denominators, so a reader computes the rates it needs."""

    towns: int = Field(description="legal 街镇 (street, town, township); `other` units excluded")
    towns_with_station: int
    stations: int
    development_bases: int
    child_friendly_sites: int
    new_child_friendly_sites: int
    observation_rooms: int
    parent_child_rooms: int
    families: int
    families_with_handbook: int
    families_registered_with_handbook: int = Field(
        description="Families registered in the year holding the 母子健康手册 (T19's numerator)"
    )
    births: int | None = Field(
        description="Births of the year, or of the latest earlier year recorded (T19's denominator)"
    )
    births_years: list[int] = Field(description="The years the births figure comes from, per district")
    families_in_need: int
    families_in_need_offline_target_met: int
    families_in_need_reached_online: int
    newborn_families: int
    newborn_families_visited: int
    city_events: int
    district_events: int
    sessions_held: int


class DistrictFigures(AreaFigures):
    code: str
    name: str
    has_development_base: bool
    has_observation_room: bool


class Indicator(BaseModel):
    id: str
    task: str
    numerator: int
    denominator: int | None
    note: str


class Figures(BaseModel):
    year: int
    as_of: dt.date
    offline_sessions_target: int
    city: AreaFigures
    districts_with_development_base: int
    districts_with_observation_room: int
    districts: list[DistrictFigures]
    indicators: list[Indicator]


class BirthsRecord(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"births": 4380, "source": "市卫健委 出生医学登记 2025"}]},
    )

    births: Integer = Field(ge=0, le=1_000_000, description="Births in the district in the year")
    source: Text200


class BirthsRead(BaseModel):
    district_code: str
    year: int
    births: int
    source: str
    recorded_at: dt.datetime
