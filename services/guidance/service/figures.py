"""The plan's figures for a year, city-wide and per district: numerators with their denominators,
so the gateway's `/v1/indicators` (and anyone else) computes the rates. A handful of GROUP BY
queries, each served by an index, sent as one statement; nothing is loaded row by row."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CompoundSelect,
    Integer,
    Row,
    Select,
    String,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.guidance.models import (
    FAMILY_YEAR_SESSIONS_CAP,
    District,
    FamilyTally,
    FamilyYear,
    FamilyYearTally,
    GuidanceSession,
    Place,
    Town,
)
from services.guidance.schemas import (
    AreaFigures,
    DistrictFigures,
    Figures,
    Indicator,
    PlaceKind,
    SessionKind,
    SessionLevel,
)
from services.guidance.service.births import births_query, latest_births
from shared.clock import shanghai_today, utcnow
from shared.divisions import LEGAL_TOWN_TYPES

EVENT_KIND = SessionKind.parenting_station_event.value  # 育儿加油站 (T23)


def _open_by(end: date) -> ColumnElement[bool]:
    return (Place.opened_on <= end) & or_(Place.closed_on.is_(None), Place.closed_on > end)


def _int(value: object) -> int:
    return int(value or 0)  # type: ignore[call-overload]


# The districts and their towns: reference rows the migrations load and nothing writes, read once
# per database and process (two round trips fewer on every call of figures()).
_DIVISIONS: dict[str, tuple[list[tuple[str, str]], Counter[str]]] = {}


async def _divisions(session: AsyncSession) -> tuple[list[tuple[str, str]], Counter[str]]:
    key = str((await session.connection()).engine.url)
    if key not in _DIVISIONS:
        districts = [
            (code, name)
            for code, name in (
                await session.execute(select(District.code, District.name).order_by(District.code))
            ).all()
        ]
        towns: Counter[str] = Counter(
            dict(
                (
                    await session.execute(
                        select(Town.district_code, func.count())
                        .where(Town.town_type.in_(LEGAL_TOWN_TYPES))
                        .group_by(Town.district_code)
                    )
                ).all()
            )
        )
        _DIVISIONS[key] = (districts, towns)
    return _DIVISIONS[key]


# The statement's parameters (its values are given with each execution).
_YEAR = bindparam("year", type_=Integer)
_START, _END, _TARGET = bindparam("start"), bindparam("end"), bindparam("target", type_=Integer)
_START_AT, _HELD_BEFORE = bindparam("start_at"), bindparam("held_before")


def _branches(by_histogram: bool) -> dict[str, tuple[int, Select[Any]]]:
    """Every tally the figures read, tag → (how many of the branch's columns, first, are text; the
    branch): each one small GROUP BY served by an index, sent together as one UNION ALL (`_tagged`)."""
    branches: dict[str, tuple[int, Select[Any]]] = {
        # 街镇 with a guidance station open by the year's end, per district.
        "towns_with_station": (
            1,
            select(Town.district_code, func.count(func.distinct(Place.town_code)))
            .join(Town, Town.code == Place.town_code)
            .where(
                Place.kind == PlaceKind.guidance_station.value,
                _open_by(_END),
                Town.town_type.in_(LEGAL_TOWN_TYPES),
            )
            .group_by(Town.district_code),
        ),
        # Places open by the year's end per kind and district, and those opened in the year.
        "places": (
            2,
            select(
                Place.district_code,
                Place.kind,
                func.count(),
                func.sum(case((Place.opened_on >= _START, 1), else_=0)),
            )
            .where(_open_by(_END))
            .group_by(Place.kind, Place.district_code),
        ),
        # Every family registered by the year's end, and the newborn families in need registered in
        # the year with those of them visited (a visit in the following January still counts for the
        # year's cohort): the tallies per district and registration year, kept by triggers with every
        # change to a family or a visit, a few hundred rows, never the families.
        "families": (
            1,
            select(
                FamilyTally.district_code,
                FamilyTally.registered_year,
                func.sum(FamilyTally.families),
                func.sum(FamilyTally.with_handbook),
                func.sum(FamilyTally.in_need),
                func.sum(FamilyTally.newborn_in_need),
                func.sum(FamilyTally.newborn_in_need_visited),
            )
            .where(FamilyTally.registered_year <= _YEAR)
            .group_by(FamilyTally.district_code, FamilyTally.registered_year),
        ),
        # Families in need with at least `target` offline sessions attended in the year, and those a
        # resource was pushed to in the year.
        "offline_online": (
            1,
            _offline_and_online(by_histogram),
        ),
        # Sessions held in the year so far, per district, level and kind.
        "held": (
            3,
            select(GuidanceSession.district_code, GuidanceSession.level, GuidanceSession.kind, func.count())
            .where(
                GuidanceSession.status == "scheduled",
                GuidanceSession.starts_at >= _START_AT,
                GuidanceSession.starts_at < _HELD_BEFORE,
            )
            .group_by(GuidanceSession.district_code, GuidanceSession.level, GuidanceSession.kind),
        ),
        "births": (
            1,
            births_query(_YEAR),
        ),
    }
    return branches


# The branches and their UNION ALL, built once per shape (by the histogram, or past its last bucket)
# and reused: building them and their cache key cost more than running them.
_STATEMENTS: dict[bool, tuple[dict[str, tuple[int, int]], CompoundSelect]] = {}


def _statement(by_histogram: bool) -> tuple[dict[str, tuple[int, int]], CompoundSelect]:
    """The UNION ALL, and each branch's tag → its numbers of text and number columns (`_untagged`)."""
    if by_histogram not in _STATEMENTS:
        branches = _branches(by_histogram)
        widths = {tag: (texts, len(b.selected_columns) - texts) for tag, (texts, b) in branches.items()}
        _STATEMENTS[by_histogram] = (widths, _tagged(branches))
    return _STATEMENTS[by_histogram]


async def figures(
    *, session: AsyncSession, year: int, target: int, district_code: str | None = None
) -> Figures:
    start, end = date(year, 1, 1), date(year, 12, 31)
    start_at, end_at = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    now = utcnow()
    held_before = min(end_at, now)

    districts, towns = await _divisions(session)
    # Every tally, in one statement: one round trip, one snapshot.
    widths, statement = _statement(target <= FAMILY_YEAR_SESSIONS_CAP)
    parameters = {
        "year": year,
        "start": start,
        "end": end,
        "target": target,
        "start_at": start_at,
        "held_before": held_before,
    }
    rows = _untagged(widths, (await session.execute(statement, parameters)).all())

    towns_with_station: Counter[str] = Counter({code: _int(n) for code, n in rows["towns_with_station"]})
    places: Counter[tuple[str, str]] = Counter()
    new_sites: Counter[str] = Counter()
    for code, kind, count, new in rows["places"]:
        places[(kind, code)] += _int(count)
        if kind == PlaceKind.child_friendly_site.value:
            new_sites[code] += _int(new)

    families: Counter[str] = Counter()
    handbook: Counter[str] = Counter()
    handbook_in_year: Counter[str] = Counter()
    in_need: Counter[str] = Counter()
    newborn: Counter[str] = Counter()
    newborn_visited: Counter[str] = Counter()
    for code, registered_year, count, with_handbook, needing, newborn_needing, visited in rows["families"]:
        families[code] += _int(count)
        handbook[code] += _int(with_handbook)
        in_need[code] += _int(needing)
        if _int(registered_year) == year:  # T19: the year's families given the handbook, against births
            handbook_in_year[code] += _int(with_handbook)
            newborn[code], newborn_visited[code] = _int(newborn_needing), _int(visited)

    offline: Counter[str] = Counter()
    online: Counter[str] = Counter()
    for code, regular, pushed in rows["offline_online"]:
        offline[code], online[code] = _int(regular), _int(pushed)

    events: Counter[tuple[str | None, str]] = Counter()
    held: Counter[str | None] = Counter()
    for code, level, kind, count in rows["held"]:
        held[code] += _int(count)
        if kind == EVENT_KIND:
            events[(code, level)] += _int(count)

    births = latest_births(rows["births"])

    def area(codes: list[str]) -> AreaFigures:
        def total(counter: Counter, kind: PlaceKind | None = None) -> int:  # type: ignore[type-arg]
            if kind is None:
                return sum(counter[c] for c in codes)
            return sum(counter[(kind.value, c)] for c in codes)

        city_wide = len(codes) == len(districts)
        return AreaFigures(
            towns=total(towns),
            towns_with_station=total(towns_with_station),
            stations=total(places, PlaceKind.guidance_station),
            development_bases=total(places, PlaceKind.development_base),
            child_friendly_sites=total(places, PlaceKind.child_friendly_site),
            new_child_friendly_sites=total(new_sites),
            observation_rooms=total(places, PlaceKind.observation_room),
            parent_child_rooms=total(places, PlaceKind.parent_child_room),
            families=total(families),
            families_with_handbook=total(handbook),
            families_registered_with_handbook=total(handbook_in_year),
            births=sum(births[c][0] for c in codes) if all(c in births for c in codes) else None,
            births_years=sorted({births[c][1] for c in codes if c in births}),
            families_in_need=total(in_need),
            families_in_need_offline_target_met=total(offline),
            families_in_need_reached_online=total(online),
            newborn_families=total(newborn),
            newborn_families_visited=total(newborn_visited),
            city_events=sum(
                n
                for (c, lvl), n in events.items()
                if lvl == SessionLevel.city.value and (city_wide or c in codes)
            ),
            district_events=sum(
                n for (c, lvl), n in events.items() if lvl == SessionLevel.district.value and c in codes
            ),
            sessions_held=sum(n for c, n in held.items() if city_wide or c in codes),
        )

    all_codes = [code for code, _ in districts]
    city = area(all_codes)
    rows = [
        DistrictFigures(
            code=code,
            name=name,
            has_development_base=places[(PlaceKind.development_base.value, code)] > 0,
            has_observation_room=places[(PlaceKind.observation_room.value, code)] > 0,
            **area([code]).model_dump(),
        )
        for code, name in districts
        if district_code is None or code == district_code
    ]
    with_base = sum(1 for c in all_codes if places[(PlaceKind.development_base.value, c)] > 0)
    with_room = sum(1 for c in all_codes if places[(PlaceKind.observation_room.value, c)] > 0)
    return Figures(
        year=year,
        as_of=min(end, shanghai_today(now)),
        offline_sessions_target=target,
        city=city,
        districts_with_development_base=with_base,
        districts_with_observation_room=with_room,
        districts=rows,
        indicators=_indicators(city, with_base, with_room, len(all_codes), target),
    )


def _offline_and_online(by_histogram: bool) -> Select[Any]:
    """Per district: the families in need with at least `target` offline sessions attended in the
    year, and those a resource was pushed to in the year."""
    if by_histogram:
        # The yearly tallies' histogram (kept by triggers): a few hundred rows.
        t = FamilyYearTally
        return (
            select(
                t.district_code,
                func.sum(case((t.sessions_attended >= _TARGET, t.families), else_=0)),
                func.sum(case((t.pushed.is_(True), t.families), else_=0)),
            )
            .where(t.year == _YEAR)
            .group_by(t.district_code)
        )
    # A target past the histogram's last bucket: one range of the yearly tallies themselves.
    return (
        select(
            FamilyYear.district_code,
            func.count().filter(FamilyYear.sessions_attended >= _TARGET),
            func.count().filter(FamilyYear.pushed.is_(True)),
        )
        .where(FamilyYear.year == _YEAR, FamilyYear.in_need.is_(True), FamilyYear.registered_on <= _END)
        .group_by(FamilyYear.district_code)
    )


# The UNION ALL's columns after the tag: three text slots, then six number slots. A branch's text
# columns (the district first) fill the first, its numbers the others, cast to the slot's type
# (PostgreSQL wants every branch's column of one type) and padded with NULLs.
_SHAPE = (String, String, String, BigInteger, BigInteger, BigInteger, BigInteger, BigInteger, BigInteger)
_TEXTS = _SHAPE.count(String)


def _tagged(branches: dict[str, tuple[int, Select[Any]]]) -> CompoundSelect:
    """The branches as one UNION ALL, each row led by its branch's name; a branch's first `texts`
    columns go to the shape's text slots, the rest to its number slots (`_untagged` undoes it)."""
    tagged = []
    for tag, (texts, branch) in branches.items():
        columns = list(branch.selected_columns)
        numbers = len(columns) - texts
        if texts > _TEXTS or numbers > len(_SHAPE) - _TEXTS:
            raise ValueError(f"branch {tag}: {texts} texts and {numbers} numbers do not fit")
        slots = [
            *(cast(c, String) for c in columns[:texts]),
            *(cast(null(), String) for _ in range(_TEXTS - texts)),
            *(cast(c, BigInteger) for c in columns[texts:]),
            *(cast(null(), BigInteger) for _ in range(len(_SHAPE) - _TEXTS - numbers)),
        ]
        labelled = [literal_column(f"'{tag}'", String).label("tag")]
        labelled += [slot.label(f"c{i}") for i, slot in enumerate(slots)]
        tagged.append(branch.with_only_columns(*labelled, maintain_column_froms=True))
    return union_all(*tagged)


def _untagged(
    widths: dict[str, tuple[int, int]], rows: Sequence[Row[Any]]
) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of `_tagged(branches)` per branch, each with the branch's own columns in order."""
    found: dict[str, list[tuple[Any, ...]]] = {tag: [] for tag in widths}
    for tag, *values in rows:
        texts, numbers = widths[tag]
        found[tag].append((*values[:texts], *values[_TEXTS : _TEXTS + numbers]))
    return found


def _indicators(
    city: AreaFigures, with_base: int, with_room: int, districts: int, target: int
) -> list[Indicator]:
    def row(id_: str, task: str, numerator: int, denominator: int | None, note: str) -> Indicator:
        return Indicator(id=id_, task=task, numerator=numerator, denominator=denominator, note=note)

    return [
        row(
            "guidance_station_coverage",
            "T2",
            city.towns_with_station,
            city.towns,
            "街镇 with a guidance station / legal 街镇",
        ),
        row(
            "child_friendly_sites",
            "T3",
            city.new_child_friendly_sites,
            None,
            "child-friendly community sites designated in the year",
        ),
        row("development_bases", "T18", city.development_bases, None, "early-development bases citywide"),
        row("development_bases.districts", "T18", with_base, districts, "districts with ≥ 1 base"),
        row(
            "newborn_home_visits",
            "§2(4)",
            city.newborn_families_visited,
            city.newborn_families,
            "newborn families in need registered in the year with ≥ 1 home visit",
        ),
        row(
            "offline_guidance",
            "§2(4)",
            city.families_in_need_offline_target_met,
            city.families_in_need,
            f"families in need with ≥ {target} offline sessions attended in the year",
        ),
        row("guidance_events.city", "T23", city.city_events, None, "city-level 育儿加油站 events held"),
        row(
            "guidance_events.district",
            "T23",
            city.district_events,
            None,
            "district-level 育儿加油站 events held",
        ),
        row("observation_room_pilots", "T20", with_room, districts, "districts with a play-observation room"),
        row(
            "online_guidance",
            "T24",
            city.families_in_need_reached_online,
            city.families_in_need,
            "families in need reached by ≥ 1 pushed resource in the year",
        ),
        row(
            "handbook_coverage",
            "T19",
            city.families_registered_with_handbook,
            city.births,
            "families registered in the year given the 母子健康手册 / births of the year "
            f"(births of {', '.join(map(str, city.births_years)) or 'no year'})",
        ),
        row(
            "handbook_holders",
            "T19",
            city.families_with_handbook,
            city.families,
            "families holding the 母子健康手册",
        ),
    ]
