"""An employment's history after its hire: each change of standing, contract or social insurance,
with what changed (field: [before, after]), who changed it and why."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.models import Employment, EmploymentChange
from services.workforce.schemas import EmploymentChangeRead
from shared.clock import new_id, utcnow
from shared.pagination import Page, PageParams, cut_page, keyset

Value = str | bool | date | None


def _plain(value: Value) -> str | bool | None:
    return value.isoformat() if isinstance(value, date) else value


def record_change(
    session: AsyncSession,
    *,
    employment: Employment,
    kind: str,
    by: str,
    changes: dict[str, tuple[Value, Value]],
    note: str | None = None,
    at: datetime | None = None,
) -> None:
    session.add(
        EmploymentChange(
            id=new_id(),
            employment_id=employment.id,
            kind=kind,
            changes={field: [_plain(before), _plain(after)] for field, (before, after) in changes.items()},
            note=note,
            changed_by=by,
            changed_at=at or utcnow(),
        )
    )


async def list_changes(
    *, session: AsyncSession, employment: Employment, page: PageParams
) -> Page[EmploymentChangeRead]:
    """Oldest change first."""
    query = keyset(
        select(EmploymentChange).where(EmploymentChange.employment_id == employment.id),
        [EmploymentChange.changed_at, EmploymentChange.id],
        page,
    )
    rows, cursor = cut_page(
        (await session.execute(query)).scalars().all(),
        limit=page.limit,
        position_of=lambda c: [c.changed_at, c.id],
    )
    items = [
        EmploymentChangeRead(
            kind=c.kind, changes=c.changes, note=c.note, changed_by=c.changed_by, changed_at=c.changed_at
        )
        for c in rows
    ]
    return Page[EmploymentChangeRead](items=items, next_cursor=cursor)
