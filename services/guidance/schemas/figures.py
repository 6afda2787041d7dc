"""Guidance's bodies: figures."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


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
