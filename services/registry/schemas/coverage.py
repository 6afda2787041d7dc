"""Registry's bodies: coverage."""

from __future__ import annotations

from pydantic import BaseModel


class TownRead(BaseModel):
    code: str
    name: str
    town_type: str
    name_variant: str | None = None


class DistrictRead(BaseModel):
    code: str
    name: str
    pinyin: str
    is_central_city: bool
    towns: list[TownRead]


class TownCoverage(BaseModel):
    code: str
    name: str
    town_type: str
    inclusive_points: int
    has_inclusive_point: bool
    new_inclusive_points: int


class DistrictCoverage(BaseModel):
    code: str
    name: str
    is_central_city: bool
    inclusive_points: int
    new_inclusive_points: int
    towns_with_point: int
    towns: int
    places: int
    children_under_3_estimate: int | None
    places_per_100_children: float | None
    town_coverage: list[TownCoverage]


class CityCoverage(BaseModel):
    year: int
    inclusive_points: int
    new_inclusive_points: int
    towns: int
    towns_with_point: int
    inclusive_town_coverage: float
    central_streets: int
    central_streets_with_point: int
    central_street_coverage: float
    kindergartens: int
    kindergartens_with_nursery_class: int
    kindergarten_nursery_share: float | None
    demand_note: str
    districts: list[DistrictCoverage]


class TownCoverageRow(BaseModel):
    """One 街镇's coverage beside its district's figures: a row of the coverage export."""

    year: int
    district_code: str
    district_name: str
    is_central_city: bool
    district_places: int
    district_places_per_100_children: float | None
    town_code: str
    town_name: str
    town_type: str
    inclusive_points: int
    has_inclusive_point: bool
    new_inclusive_points: int
