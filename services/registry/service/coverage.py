"""Coverage (T1) and demand (T6), per district and 街镇, from approved facilities."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.models import District, Facility, Town
from services.registry.schemas import (
    CityCoverage,
    DistrictCoverage,
    FacilityStatus,
    TownCoverage,
    TownCoverageRow,
)
from shared.clock import SHANGHAI

LEGAL_TOWN_TYPES = ("street", "town", "township")
DEMAND_NOTE = (
    "children under 3 ≈ census age 0 + ¾ × census ages 1–4 (2020): the census gives no 0–3 group; "
    "places = capacity of approved facilities"
)


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


async def coverage(*, session: AsyncSession, year: int) -> CityCoverage:
    """As of the end of `year`: approved inclusive points per 街镇, new ones approved in the year,
    and the rates the plan sets targets for. `other` units are valid addresses but not in the
    denominators (216 legal 街镇; 72 central-city 街道)."""
    # The plan's years are Shanghai's: a point approved at 00:30 on 1 January there is the new year's.
    year_end = datetime(year + 1, 1, 1, tzinfo=SHANGHAI)
    year_start = datetime(year, 1, 1, tzinfo=SHANGHAI)
    districts = (await session.execute(select(District).order_by(District.code))).scalars().all()
    towns = (await session.execute(select(Town).order_by(Town.code))).scalars().all()
    rows = (
        await session.execute(
            select(
                Facility.town_code,
                Facility.district_code,
                Facility.kind,
                # An inclusive facility flagged for fees above the cap does not count as inclusive.
                Facility.inclusive & ~Facility.fee_cap_flagged,
                Facility.has_nursery_class,
                Facility.approved_at,
                Facility.capacity_infant + Facility.capacity_toddler + Facility.capacity_preschool,
            ).where(Facility.status == FacilityStatus.approved.value, Facility.approved_at.is_not(None))
        )
    ).all()

    points: Counter[str] = Counter()
    new_points: Counter[str] = Counter()
    places: Counter[str] = Counter()
    kindergartens = with_nursery = 0
    for town_code, district_code, kind, inclusive, nursery, approved_at, total in rows:
        approved_at = approved_at if approved_at.tzinfo else approved_at.replace(tzinfo=UTC)
        if approved_at >= year_end:
            continue
        places[district_code] += total
        if kind == "kindergarten":
            kindergartens += 1
            with_nursery += bool(nursery)
        if inclusive:
            points[town_code] += 1
            if approved_at >= year_start:
                new_points[town_code] += 1

    by_district: dict[str, list[TownCoverage]] = defaultdict(list)
    for t in towns:
        by_district[t.district_code].append(
            TownCoverage(
                code=t.code,
                name=t.name,
                town_type=t.town_type,
                inclusive_points=points[t.code],
                has_inclusive_point=points[t.code] > 0,
                new_inclusive_points=new_points[t.code],
            )
        )
    central = {d.code for d in districts if d.is_central_city}
    legal = [t for t in towns if t.town_type in LEGAL_TOWN_TYPES]
    central_streets = [t for t in towns if t.district_code in central and t.town_type == "street"]

    district_rows = []
    for d in districts:
        mine = by_district[d.code]
        legal_mine = [t for t in mine if t.town_type in LEGAL_TOWN_TYPES]
        children = (
            round((d.population_2020_age0 or 0) + 0.75 * (d.population_2020_age1_4 or 0))
            if d.population_2020_age0 is not None
            else None
        )
        district_rows.append(
            DistrictCoverage(
                code=d.code,
                name=d.name,
                is_central_city=d.is_central_city,
                inclusive_points=sum(t.inclusive_points for t in mine),
                new_inclusive_points=sum(t.new_inclusive_points for t in mine),
                towns_with_point=sum(1 for t in legal_mine if t.has_inclusive_point),
                towns=len(legal_mine),
                places=places[d.code],
                children_under_3_estimate=children,
                places_per_100_children=round(100 * places[d.code] / children, 2) if children else None,
                town_coverage=mine,
            )
        )
    towns_with_point = sum(1 for t in legal if points[t.code] > 0)
    central_with_point = sum(1 for t in central_streets if points[t.code] > 0)
    return CityCoverage(
        year=year,
        inclusive_points=sum(points.values()),
        new_inclusive_points=sum(new_points.values()),
        towns=len(legal),
        towns_with_point=towns_with_point,
        inclusive_town_coverage=_share(towns_with_point, len(legal)),
        central_streets=len(central_streets),
        central_streets_with_point=central_with_point,
        central_street_coverage=_share(central_with_point, len(central_streets)),
        kindergartens=kindergartens,
        kindergartens_with_nursery_class=with_nursery,
        kindergarten_nursery_share=_share(with_nursery, kindergartens) if kindergartens else None,
        demand_note=DEMAND_NOTE,
        districts=district_rows,
    )


def coverage_rows(city: CityCoverage) -> list[TownCoverageRow]:
    return [
        TownCoverageRow(
            year=city.year,
            district_code=district.code,
            district_name=district.name,
            is_central_city=district.is_central_city,
            district_places=district.places,
            district_places_per_100_children=district.places_per_100_children,
            town_code=town.code,
            town_name=town.name,
            town_type=town.town_type,
            inclusive_points=town.inclusive_points,
            has_inclusive_point=town.has_inclusive_point,
            new_inclusive_points=town.new_inclusive_points,
        )
        for district in city.districts
        for town in district.town_coverage
    ]
