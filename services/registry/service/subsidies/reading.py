"""Subsidies: who sees which lists and lines, and their pages."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.models import Facility, SubsidyLine, SubsidyList
from services.registry.service.subsidies.common import SubsidyListNotFound
from shared.i18n import tr
from shared.identity import ClientKind, Identity
from shared.pagination import PageParams, cut_page, keyset


def may_see_list(caller: Identity, district_code: str) -> bool:
    if caller.sees_whole_city():
        return True
    return caller.kind == ClientKind.district and caller.district_code == district_code


async def get_list(
    *, session: AsyncSession, caller: Identity, month: str, district_code: str, for_update: bool = False
) -> SubsidyList:
    """404 when there is none or the caller may not see the district's lists (an operator reads
    only its own lines)."""
    query = select(SubsidyList).where(SubsidyList.month == month, SubsidyList.district_code == district_code)
    if for_update:
        query = query.with_for_update()
    found = (await session.execute(query)).scalars().first()
    if found is None or not may_see_list(caller, district_code):
        raise SubsidyListNotFound(
            tr(
                "No subsidy list for {month} in {district_code} that you may see.",
                month=month,
                district_code=district_code,
            )
        )
    return found


async def list_id_of(*, session: AsyncSession, caller: Identity, month: str, district_code: str) -> str:
    """The list's id for reading its lines: a bureau's, a district's own, and any list for an operator
    (it sees only its own facilities' lines there); for anyone else a 404, as for no list."""
    found = await session.scalar(
        select(SubsidyList.id).where(SubsidyList.month == month, SubsidyList.district_code == district_code)
    )
    # An operator reads its own lines on any list; another district may not learn a list exists.
    if not (may_see_list(caller, district_code) or caller.kind == ClientKind.operator):
        found = None
    if found is None:
        raise SubsidyListNotFound(
            tr(
                "No subsidy list for {month} in {district_code} that you may see.",
                month=month,
                district_code=district_code,
            )
        )
    return found


async def lists_page(
    *,
    session: AsyncSession,
    caller: Identity,
    page: PageParams,
    month: str | None = None,
    district_code: str | None = None,
    status: str | None = None,
) -> tuple[list[SubsidyList], str | None]:
    """Newest month first; a district sees its own, an operator none (it reads its lines)."""
    query = select(SubsidyList)
    if not caller.sees_whole_city():
        if caller.kind != ClientKind.district:
            return [], None
        query = query.where(SubsidyList.district_code == caller.district_code)
    if month:
        query = query.where(SubsidyList.month == month)
    if district_code:
        query = query.where(SubsidyList.district_code == district_code)
    if status:
        query = query.where(SubsidyList.status == status)
    query = keyset(query, [SubsidyList.month, SubsidyList.district_code], page, descending=True)
    rows = (await session.execute(query)).scalars().all()
    return cut_page(rows, limit=page.limit, position_of=lambda r: [r.month, r.district_code])


def _line_visibility(caller: Identity) -> ColumnElement[bool] | None:
    """None: every line. Else the lines of the caller's district or own facilities."""
    if caller.sees_whole_city():
        return None
    if caller.kind == ClientKind.district and caller.district_code:
        return SubsidyList.district_code == caller.district_code
    if caller.kind == ClientKind.operator:
        own = [Facility.owner_client_id == caller.client_id]
        if caller.facility_ids:
            own.append(SubsidyLine.facility_id.in_(caller.facility_ids))
        return or_(*own)
    return SubsidyLine.id.is_(None)  # nobody else sees a line


async def lines_page(
    *,
    session: AsyncSession,
    caller: Identity,
    page: PageParams,
    list_id: str | None = None,
    month: str | None = None,
    facility_id: str | None = None,
    newest_first: bool = False,
) -> tuple[list[tuple[SubsidyLine, SubsidyList]], str | None]:
    """Lines the caller may see, by list: adjustments (by month), then entitlements, each by facility
    name; each with its list. `newest_first` walks the same order backwards (the latest list first)."""
    query = (
        select(SubsidyLine, SubsidyList)
        .join(SubsidyList, SubsidyList.id == SubsidyLine.list_id)
        .join(Facility, Facility.id == SubsidyLine.facility_id)
    )
    visible = _line_visibility(caller)
    if visible is not None:
        query = query.where(visible)
    if list_id:
        query = query.where(SubsidyLine.list_id == list_id)
    if month:
        query = query.where(SubsidyList.month == month)
    if facility_id:
        query = query.where(SubsidyLine.facility_id == facility_id)
    key = [
        SubsidyList.month,
        SubsidyList.district_code,
        SubsidyLine.kind,
        SubsidyLine.for_month,
        SubsidyLine.facility_name,
        SubsidyLine.id,
    ]
    rows = [
        tuple(row) for row in (await session.execute(keyset(query, key, page, descending=newest_first))).all()
    ]
    return cut_page(
        rows,
        limit=page.limit,
        position_of=lambda r: [
            r[1].month,
            r[1].district_code,
            r[0].kind,
            r[0].for_month,
            r[0].facility_name,
            r[0].id,
        ],
    )
