"""guidance's request and reply shapes."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.clock import Day, Timestamp, shanghai_today
from shared.scalars import Flag, Integer
from shared.text import OneLine, line, text

# The plan's guidance covers every child's age up to school: 0–6 years.
MAX_CHILD_AGE_YEARS = 6
MAX_AGE_MONTHS = 12 * MAX_CHILD_AGE_YEARS + 11


# Text as every service takes it (shared/text.py): `Text*` one line, 1–n characters; `Note*` free
# text, may be empty.
Text64 = line(64)
Text100 = line(100)
Text200 = line(200)
Note300 = text(300)
Note2000 = text(2000)
TownCode = Annotated[str, StringConstraints(pattern=r"^\d{9}$")]
DistrictCode = Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
Uuid = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
# Mainland mobile numbers: 11 digits, 1 then 3–9 (the gateway's parent accounts use the same rule).
Phone = Annotated[str, StringConstraints(pattern=r"^1[3-9]\d{9}$")]
Topic = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,31}$")]
Url = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=500), OneLine]


class PlaceKind(StrEnum):
    guidance_station = "guidance_station"  # 家庭科学育儿指导站 (T2), one per 街镇
    development_base = "development_base"  # 儿童早期发展基地 (T18), per district
    child_friendly_site = "child_friendly_site"  # 儿童友好社区示范点 (T3)
    observation_room = "observation_room"  # 游戏观察室 in a community health centre (T20)
    parent_child_room = "parent_child_room"  # 亲子活动室 in a community health centre (T20)


# Kinds tied to a 街镇; a development base may be tied to its district only.
TOWN_PLACES = frozenset(PlaceKind) - {PlaceKind.development_base}


class Relation(StrEnum):
    mother = "mother"
    father = "father"
    grandmother = "grandmother"
    grandfather = "grandfather"
    other = "other"


GRANDPARENTS = frozenset({Relation.grandmother, Relation.grandfather})


class VisitTopic(StrEnum):
    newborn_visit = "newborn_visit"
    nutrition = "nutrition"
    breastfeeding = "breastfeeding"
    growth = "growth"
    vaccination = "vaccination"
    safety = "safety"
    disease_prevention = "disease_prevention"
    early_development = "early_development"
    mental_health = "mental_health"
    other = "other"


class SessionLevel(StrEnum):
    city = "city"
    district = "district"
    station = "station"


KIND_TITLES = {
    "parenting_station_event": "育儿加油站",
    "carnival": "亲子嘉年华",
    "course": "科学育儿课程",
    "grandparent_course": "祖辈养育课堂",
    "lecture": "育儿讲座",
    "play_group": "亲子游戏小组",
    "consultation": "育儿咨询",
    "other": "育儿指导活动",
}


class SessionKind(StrEnum):
    parenting_station_event = "parenting_station_event"  # 育儿加油站 (T23)
    carnival = "carnival"  # 亲子嘉年华
    course = "course"
    grandparent_course = "grandparent_course"  # 隔代养育 courses
    lecture = "lecture"
    play_group = "play_group"
    consultation = "consultation"
    other = "other"


class ResourceKind(StrEnum):
    article = "article"
    video = "video"
    course = "course"
    package = "package"


class Audience(StrEnum):
    parents = "parents"
    grandparents = "grandparents"
    facilities = "facilities"


class PiiView(StrEnum):
    masked = "masked"
    unmasked = "unmasked"


def _distinct(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("each value may appear once")
    return values


# --- places -------------------------------------------------------------------------------------


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


# --- families -----------------------------------------------------------------------------------


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


class FamilyUpdate(BaseModel):
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


# --- home visits --------------------------------------------------------------------------------


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


# --- sessions -----------------------------------------------------------------------------------


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


# --- resources ----------------------------------------------------------------------------------


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


# --- figures ------------------------------------------------------------------------------------


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
