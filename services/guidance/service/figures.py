"""The plan's figures for a year, city-wide and per district: numerators with their denominators,
so the gateway's `/v1/indicators` (and anyone else) computes the rates. A handful of GROUP BY
queries, each served by an index; nothing is loaded row by row."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

from sqlalchemy import ColumnElement, case, func, or_, select
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
from services.guidance.service.births import births_for
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


async def figures(
    *, session: AsyncSession, year: int, target: int, district_code: str | None = None
) -> Figures:
    start, end = date(year, 1, 1), date(year, 12, 31)
    start_at, end_at = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    now = utcnow()
    held_before = min(end_at, now)
    run = session.execute

    districts, towns = await _divisions(session)
    towns_with_station = Counter(
        dict(
            (
                await run(
                    select(Town.district_code, func.count(func.distinct(Place.town_code)))
                    .join(Town, Town.code == Place.town_code)
                    .where(
                        Place.kind == PlaceKind.guidance_station.value,
                        _open_by(end),
                        Town.town_type.in_(LEGAL_TOWN_TYPES),
                    )
                    .group_by(Town.district_code)
                )
            ).all()
        )
    )
    places: Counter[tuple[str, str]] = Counter()
    new_sites: Counter[str] = Counter()
    for kind, code, count, new in (
        await run(
            select(
                Place.kind,
                Place.district_code,
                func.count(),
                func.sum(case((Place.opened_on >= start, 1), else_=0)),
            )
            .where(_open_by(end))
            .group_by(Place.kind, Place.district_code)
        )
    ).all():
        places[(kind, code)] += count
        if kind == PlaceKind.child_friendly_site.value:
            new_sites[code] += _int(new)

    # Every family registered by the year's end, and the newborn families in need registered in the
    # year with those of them visited (a visit in the following January still counts for the year's
    # cohort): the tallies per district and registration year, kept by triggers with every change to
    # a family or a visit, a few hundred rows, never the families.
    families: Counter[str] = Counter()
    handbook: Counter[str] = Counter()
    handbook_in_year: Counter[str] = Counter()
    in_need: Counter[str] = Counter()
    newborn: Counter[str] = Counter()
    newborn_visited: Counter[str] = Counter()
    for code, registered_year, count, with_handbook, needing, newborn_needing, visited in (
        await run(
            select(
                FamilyTally.district_code,
                FamilyTally.registered_year,
                func.sum(FamilyTally.families),
                func.sum(FamilyTally.with_handbook),
                func.sum(FamilyTally.in_need),
                func.sum(FamilyTally.newborn_in_need),
                func.sum(FamilyTally.newborn_in_need_visited),
            )
            .where(FamilyTally.registered_year <= year)
            .group_by(FamilyTally.district_code, FamilyTally.registered_year)
        )
    ).all():
        families[code] += _int(count)
        handbook[code] += _int(with_handbook)
        in_need[code] += _int(needing)
        if registered_year == year:  # T19: the year's families given the handbook, against its births
            handbook_in_year[code] += _int(with_handbook)
            newborn[code], newborn_visited[code] = _int(newborn_needing), _int(visited)

    # Families in need with at least `target` offline sessions attended in the year, and those a
    # resource was pushed to in the year.
    offline, online = await _offline_and_online(session=session, year=year, target=target)

    events: Counter[tuple[str | None, str]] = Counter()
    held: Counter[str | None] = Counter()
    for code, level, kind, count in (
        await run(
            select(GuidanceSession.district_code, GuidanceSession.level, GuidanceSession.kind, func.count())
            .where(
                GuidanceSession.status == "scheduled",
                GuidanceSession.starts_at >= start_at,
                GuidanceSession.starts_at < held_before,
            )
            .group_by(GuidanceSession.district_code, GuidanceSession.level, GuidanceSession.kind)
        )
    ).all():
        held[code] += count
        if kind == EVENT_KIND:
            events[(code, level)] += count

    births = await births_for(session=session, year=year)

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


async def _offline_and_online(
    *, session: AsyncSession, year: int, target: int
) -> tuple[Counter[str], Counter[str]]:
    offline: Counter[str] = Counter()
    online: Counter[str] = Counter()
    if target <= FAMILY_YEAR_SESSIONS_CAP:
        # The yearly tallies' histogram (kept by triggers): a few hundred rows.
        t = FamilyYearTally
        query = (
            select(
                t.district_code,
                func.sum(case((t.sessions_attended >= target, t.families), else_=0)),
                func.sum(case((t.pushed.is_(True), t.families), else_=0)),
            )
            .where(t.year == year)
            .group_by(t.district_code)
        )
    else:  # a target past the histogram's last bucket: one range of the yearly tallies themselves
        query = (
            select(
                FamilyYear.district_code,
                func.count().filter(FamilyYear.sessions_attended >= target),
                func.count().filter(FamilyYear.pushed.is_(True)),
            )
            .where(
                FamilyYear.year == year,
                FamilyYear.in_need.is_(True),
                FamilyYear.registered_on <= date(year, 12, 31),
            )
            .group_by(FamilyYear.district_code)
        )
    for code, regular, pushed in (await session.execute(query)).all():
        offline[code], online[code] = _int(regular), _int(pushed)
    return offline, online


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
