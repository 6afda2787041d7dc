"""What guidance's request and reply bodies share: field types and enumerations."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints

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
