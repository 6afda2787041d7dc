"""Births per district and year (T19's denominator): HEALTH records them; everyone with the figures reads."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import BindParameter, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.guidance.events import BirthsRecorded
from services.guidance.models import District, DistrictBirths
from services.guidance.schemas import BirthsRead, BirthsRecord
from shared.clock import utcnow
from shared.errors import Forbidden, NotFound
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import Identity


def to_read(row: DistrictBirths) -> BirthsRead:
    return BirthsRead.model_validate(row, from_attributes=True)


async def record_births(
    *, session: AsyncSession, caller: Identity, district_code: str, year: int, data: BirthsRecord
) -> DistrictBirths:
    """HEALTH's figure for a district and year; a second one for the same year corrects the first."""
    if not caller.is_bureau("HEALTH"):
        raise Forbidden("Births are recorded by HEALTH.")
    if await session.get(District, district_code) is None:
        raise NotFound(tr("No district {district_code}.", district_code=district_code))
    row = await session.get(DistrictBirths, (district_code, year), with_for_update=True)
    if row is None:
        row = DistrictBirths(district_code=district_code, year=year)
        session.add(row)
    row.births = data.births
    row.source = data.source
    row.recorded_by = caller.client_id
    row.recorded_at = utcnow()
    await session.flush()
    await emit(
        session,
        BirthsRecorded(
            district_code=district_code, year=year, births=row.births, recorded_at=row.recorded_at
        ),
    )
    return row


async def births_list(
    *, session: AsyncSession, year: int | None, district_code: str | None
) -> list[DistrictBirths]:
    query = select(DistrictBirths).order_by(DistrictBirths.year.desc(), DistrictBirths.district_code)
    if year is not None:
        query = query.where(DistrictBirths.year == year)
    if district_code is not None:
        query = query.where(DistrictBirths.district_code == district_code)
    return list((await session.execute(query)).scalars())


def births_query(year: int | BindParameter[int]) -> Select[tuple[str, int, int]]:
    """Every district's recorded births up to `year`, for `latest_births`."""
    return select(DistrictBirths.district_code, DistrictBirths.year, DistrictBirths.births).where(
        DistrictBirths.year <= year
    )


def latest_births(rows: Iterable[tuple[str, int, int]]) -> dict[str, tuple[int, int]]:
    """District → (births, the year they are of): the year's own, else the latest earlier one."""
    found: dict[str, tuple[int, int]] = {}
    for code, of_year, births in rows:
        if code not in found or of_year > found[code][1]:
            found[code] = (int(births), int(of_year))
    return found
