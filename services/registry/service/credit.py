"""The credit record (诚信记录) and the public inspection history: written by EDU, and from the other
services' events, each automatic entry naming its source event so that a replay writes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import structlog
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.models import CreditEntry, Facility, InspectionRecord
from services.registry.schemas import CreditEntryCreate, CreditEntryRead, FailedItem, InspectionRead
from shared.identity import Identity, require_bureau
from shared.pagination import PageParams, cut_page, keyset

log = structlog.get_logger("cradle.registry.credit")

# Checklist items in the plain words the public page shows.
ITEM_WORDS = {
    "food_safety": "食品安全 Food safety",
    "health_care": "卫生保健 Health care",
    "fire_safety": "消防安全 Fire safety",
    "premises": "场地与设施设备 Premises and equipment",
    "staffing": "人员配备 Staffing",
    "records": "档案记录 Records",
    "video_coverage": "视频监控覆盖 Video coverage",
}
OUTCOME_WORDS = {"fail": "不合格 failed", "rectify": "需整改 rectification required", "pass": "合格 passed"}


def to_entry_read(entry: CreditEntry) -> CreditEntryRead:
    return CreditEntryRead(
        id=entry.id,
        polarity=entry.polarity,
        category=entry.category,
        title=entry.title,
        detail=entry.detail,
        occurred_on=entry.occurred_on,
        source_event_type=entry.source_event_type,
        recorded_at=entry.recorded_at,
    )


CREDIT_ORDER = (CreditEntry.occurred_on, CreditEntry.recorded_at, CreditEntry.id)  # newest first


async def credit_record(*, session: AsyncSession, facility_id: str) -> list[CreditEntry]:
    """The whole record, for the public page."""
    rows = await session.execute(
        select(CreditEntry)
        .where(CreditEntry.facility_id == facility_id)
        .order_by(*(column.desc() for column in CREDIT_ORDER))
    )
    return list(rows.scalars().all())


async def credit_record_page(
    *, session: AsyncSession, facility_id: str, page: PageParams
) -> tuple[list[CreditEntry], str | None]:
    query = keyset(
        select(CreditEntry).where(CreditEntry.facility_id == facility_id), CREDIT_ORDER, page, descending=True
    )
    rows = (await session.execute(query)).scalars().all()
    return cut_page(rows, limit=page.limit, position_of=lambda e: [e.occurred_on, e.recorded_at, e.id])


async def write_entry(
    *, session: AsyncSession, caller: Identity, facility: Facility, data: CreditEntryCreate
) -> CreditEntry:
    # A public entry about a facility is EDU's word (the lead bureau); the admin client acts for no
    # bureau. Entries from the other services' events are written by the platform (entry_from_event).
    require_bureau(caller, "EDU", action="Writing a credit entry by hand")
    entry = CreditEntry(
        id=str(uuid.uuid4()),
        facility_id=facility.id,
        polarity=data.polarity.value,
        category=data.category,
        title=data.title,
        detail=data.detail,
        occurred_on=data.occurred_on,
        written_by=caller.client_id,
        recorded_at=datetime.now(UTC),
    )
    session.add(entry)
    await session.flush()
    return entry


async def entry_from_event(
    *,
    session: AsyncSession,
    facility_id: str,
    event_id: str,
    event_type: str,
    category: str,
    title: str,
    detail: str,
    occurred_on: date,
    polarity: str = "negative",
) -> bool:
    """One entry per (facility, source event); an unknown facility is logged and skipped."""
    if await session.get(Facility, facility_id) is None:
        log.warning("credit_event_for_unknown_facility", facility_id=facility_id, event_type=event_type)
        return False
    existing = await session.execute(
        select(CreditEntry.id).where(
            CreditEntry.facility_id == facility_id, CreditEntry.source_event_id == event_id
        )
    )
    if existing.first() is not None:
        return False
    session.add(
        CreditEntry(
            id=str(uuid.uuid4()),
            facility_id=facility_id,
            polarity=polarity,
            category=category,
            title=title,
            detail=detail[:2000],
            occurred_on=occurred_on,
            source_event_id=event_id,
            source_event_type=event_type,
            written_by="platform",
            recorded_at=datetime.now(UTC),
        )
    )
    await session.flush()
    return True


def describe_failed(items: list[dict[str, object]]) -> list[FailedItem]:
    return [
        FailedItem(
            code=str(item.get("code")),
            description=ITEM_WORDS.get(str(item.get("code")), str(item.get("code"))),
            note=str(item["note"]) if item.get("note") else None,
        )
        for item in items
    ]


def _inspections_since(facility_id: str, years: int) -> Select[tuple[InspectionRecord]]:
    since = date.today() - timedelta(days=365 * years + years // 4 + 1)
    return select(InspectionRecord).where(
        InspectionRecord.facility_id == facility_id, InspectionRecord.inspected_on >= since
    )


def _inspection_read(r: InspectionRecord) -> InspectionRead:
    return InspectionRead(
        inspection_id=r.inspection_id,
        inspected_on=r.inspected_on,
        outcome=r.outcome,
        failed_items=describe_failed(r.failed_items),
        rectify_by=r.rectify_by,
        rectified=r.rectified_on is not None,
        rectified_on=r.rectified_on,
    )


async def inspection_history(*, session: AsyncSession, facility_id: str, years: int) -> list[InspectionRead]:
    """The last `years` of inspections, newest first, for the public page."""
    query = _inspections_since(facility_id, years).order_by(
        InspectionRecord.inspected_on.desc(), InspectionRecord.inspection_id.desc()
    )
    return [_inspection_read(r) for r in (await session.execute(query)).scalars().all()]


async def inspection_history_page(
    *, session: AsyncSession, facility_id: str, years: int, page: PageParams
) -> tuple[list[InspectionRead], str | None]:
    query = keyset(
        _inspections_since(facility_id, years),
        [InspectionRecord.inspected_on, InspectionRecord.inspection_id],
        page,
        descending=True,
    )
    rows, cursor = cut_page(
        (await session.execute(query)).scalars().all(),
        limit=page.limit,
        position_of=lambda r: [r.inspected_on, r.inspection_id],
    )
    return [_inspection_read(r) for r in rows], cursor
