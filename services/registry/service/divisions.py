from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.models import District, Town
from services.registry.schemas import DistrictRead, TownRead


async def list_divisions(*, session: AsyncSession) -> list[DistrictRead]:
    districts = (await session.execute(select(District).order_by(District.code))).scalars().all()
    towns = (await session.execute(select(Town).order_by(Town.code))).scalars().all()
    by_district: dict[str, list[TownRead]] = {d.code: [] for d in districts}
    for town in towns:
        by_district[town.district_code].append(
            TownRead(code=town.code, name=town.name, town_type=town.town_type, name_variant=town.name_variant)
        )
    return [
        DistrictRead(
            code=d.code,
            name=d.name,
            pinyin=d.pinyin,
            is_central_city=d.is_central_city,
            towns=by_district[d.code],
        )
        for d in districts
    ]
