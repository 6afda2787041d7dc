"""The registry seeders' walk over the approved facilities not yet given a kind of record: through
the registry's own outbox (their events go out as the service's would), 200 facilities to a
transaction, so a second run finds them done and adds nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.registry.models import Facility, outbox
from shared.events.outbox import OutboxWriter, outbox_session_info
from shared.events.streams import Namespace

BATCH = 200


def registry_sessions(engine: AsyncEngine, namespace: str) -> async_sessionmaker[AsyncSession]:
    info = outbox_session_info(OutboxWriter(outbox, Namespace(namespace), "/cradle/registry"))
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


async def approved_without(session: AsyncSession, facility_column: Any) -> list[str]:
    """Approved facilities (by id) with no row yet in `facility_column`'s table."""
    have = set((await session.execute(select(facility_column).distinct())).scalars())
    approved = select(Facility.id).where(Facility.status == "approved").order_by(Facility.id)
    return [i for i in (await session.execute(approved)).scalars() if i not in have]


async def in_batches(
    maker: async_sessionmaker[AsyncSession], ids: list[str]
) -> AsyncIterator[tuple[AsyncSession, list[Facility]]]:
    """Each batch's facilities, in id order, with the session of the transaction they go in."""
    for start in range(0, len(ids), BATCH):
        async with maker() as session, session.begin():
            chosen = select(Facility).where(Facility.id.in_(ids[start : start + BATCH])).order_by(Facility.id)
            yield session, list((await session.execute(chosen)).scalars())
