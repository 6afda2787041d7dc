"""Subsidies (综合奖补): FINANCE's rates, the districts' monthly lists, EDU's review, FINANCE's
publication and payments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.deps import SettingsDep
from services.registry.models import SubsidyLine, SubsidyList, SubsidyRate
from services.registry.schemas.subsidies import (
    Month,
    PaymentCreate,
    RateHistory,
    RateRead,
    RateSet,
    SubsidyCheck,
    SubsidyLineRead,
    SubsidyLineRow,
    SubsidyListRead,
    SubsidyListReview,
    SubsidyListStatus,
)
from services.registry.service import subsidies
from shared.api import IdPath, IfMatch, etag
from shared.contracts.types import MONTH_PATTERN
from shared.export import EXPORT_RESPONSES, ExportDep
from shared.idempotency import Reply, idempotent
from shared.identity import Identity, scope_guard
from shared.pagination import Page, PageParams, page_params
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["subsidies"])
Reader = Annotated[Identity, scope_guard("registry:read")]
Reviewer = Annotated[Identity, scope_guard("registry:review")]
Paging = Annotated[PageParams, Depends(page_params)]
Year = Annotated[int, Path(ge=2000, le=2100)]
District = Annotated[str, Path(pattern=r"^\d{6}$")]
MonthPath = Annotated[str, Path(pattern=MONTH_PATTERN, description="YYYY-MM")]


def rate_read(rate: SubsidyRate) -> RateRead:
    return RateRead.model_validate(rate, from_attributes=True)


def list_read(subsidy_list: SubsidyList) -> SubsidyListRead:
    return SubsidyListRead.model_validate(subsidy_list, from_attributes=True)


def line_read(line: SubsidyLine, subsidy_list: SubsidyList) -> SubsidyLineRead:
    return SubsidyLineRead(
        id=line.id,
        list_id=line.list_id,
        month=subsidy_list.month,
        district_code=subsidy_list.district_code,
        facility_id=line.facility_id,
        facility_name=line.facility_name,
        kind=line.kind,
        for_month=line.for_month,
        eligible=line.eligible,
        places=line.places,
        rate_fen=line.rate_fen,
        amount_fen=line.amount_fen,
        refusals=line.refusals,
        checks=[SubsidyCheck.model_validate(c) for c in line.checks],
        paid_fen=line.paid_fen,
        paid_on=line.paid_on,
        payment_reference=line.payment_reference,
    )


def line_row(line: SubsidyLineRead) -> SubsidyLineRow:
    return SubsidyLineRow(
        **line.model_dump(include=set(SubsidyLineRow.model_fields) - {"reasons_zh", "reasons_en"}),
        reasons_zh="；".join(c.zh for c in line.checks),
        reasons_en="; ".join(c.en for c in line.checks),
    )


@router.put("/subsidy-rates/{year}/{district_code}", response_model=RateRead)
async def set_subsidy_rate(
    year: Year, district_code: District, body: RateSet, session: SessionDep, caller: Reviewer
) -> RateRead:
    """FINANCE sets the amount per inclusive place per month for a district and year. Every setting
    stays in the history; a month's list uses the one in force at the month's close."""
    rate = await subsidies.set_rate(
        session=session, caller=caller, year=year, district_code=district_code, data=body
    )
    return rate_read(rate)


@router.get("/subsidy-rates/{year}/{district_code}", response_model=RateHistory)
async def read_subsidy_rate(
    year: Year, district_code: District, session: SessionDep, _caller: Reader
) -> RateHistory:
    """The rate in force now and every setting, newest first."""
    history = await subsidies.rate_history(session=session, year=year, district_code=district_code)
    return RateHistory(
        district_code=district_code,
        year=year,
        current=rate_read(history[0]) if history else None,
        history=[rate_read(r) for r in history],
    )


@router.get("/subsidy-rates/{year}", response_model=list[RateRead])
async def list_subsidy_rates(year: Year, session: SessionDep, _caller: Reader) -> list[RateRead]:
    """Each district's rate in force now for the year (at most 16)."""
    return [rate_read(r) for r in await subsidies.current_rates(session=session, year=year)]


@router.post("/subsidy-lists/{month}/{district_code}/compute", response_model=SubsidyListRead)
@idempotent(200)
async def compute_subsidy_list(
    month: MonthPath, district_code: District, session: SessionDep, caller: Reviewer, settings: SettingsDep
) -> Reply:
    """Compute a closed month's list for a district from the records as they stood at the month's
    close, with the adjustments of earlier published months. Again while a draft or returned: the
    same records, the same answer."""
    computed = await subsidies.compute_list(
        session=session, caller=caller, month=month, district_code=district_code, settings=settings
    )
    return Reply(list_read(computed), etag(computed.version))


@router.get("/subsidy-lists", response_model=Page[SubsidyListRead])
async def list_subsidy_lists(
    session: SessionDep,
    caller: Reader,
    paging: Paging,
    month: Annotated[Month | None, Query()] = None,
    district_code: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
    status: SubsidyListStatus | None = None,
) -> Page[SubsidyListRead]:
    """Lists you may see, newest month first: the city's for a bureau, a district's own."""
    rows, cursor = await subsidies.lists_page(
        session=session,
        caller=caller,
        page=paging,
        month=month,
        district_code=district_code,
        status=status.value if status else None,
    )
    return Page[SubsidyListRead](items=[list_read(r) for r in rows], next_cursor=cursor)


@router.get("/subsidy-lists/{month}/{district_code}", response_model=SubsidyListRead)
async def read_subsidy_list(
    month: MonthPath, district_code: District, session: SessionDep, caller: Reader, response: Response
) -> SubsidyListRead:
    found = await subsidies.get_list(session=session, caller=caller, month=month, district_code=district_code)
    response.headers.update(etag(found.version))
    return list_read(found)


@router.post("/subsidy-lists/{month}/{district_code}/review", response_model=SubsidyListRead)
@idempotent(200)
async def review_subsidy_list(
    month: MonthPath,
    district_code: District,
    body: SubsidyListReview,
    session: SessionDep,
    caller: Reviewer,
    if_match: IfMatch = None,
) -> Reply:
    """EDU (the city's, or the district's office) approves a draft or returns it to be recomputed."""
    found = await subsidies.get_list(
        session=session, caller=caller, month=month, district_code=district_code, for_update=True
    )
    reviewed = await subsidies.review_list(
        session=session, caller=caller, subsidy_list=found, data=body, if_match=if_match
    )
    return Reply(list_read(reviewed), etag(reviewed.version))


@router.post("/subsidy-lists/{month}/{district_code}/publish", response_model=SubsidyListRead)
@idempotent(200)
async def publish_subsidy_list(
    month: MonthPath, district_code: District, session: SessionDep, caller: Reviewer, if_match: IfMatch = None
) -> Reply:
    """FINANCE publishes an approved list: from then on it never changes (later corrections are
    adjustment lines on the next month's list)."""
    found = await subsidies.get_list(
        session=session, caller=caller, month=month, district_code=district_code, for_update=True
    )
    published = await subsidies.publish_list(
        session=session, caller=caller, subsidy_list=found, if_match=if_match
    )
    return Reply(list_read(published), etag(published.version))


@router.get(
    "/subsidy-lists/{month}/{district_code}/lines",
    response_model=Page[SubsidyLineRead],
    responses=EXPORT_RESPONSES,
)
async def subsidy_list_lines(
    month: MonthPath,
    district_code: District,
    session: SessionDep,
    caller: Reader,
    paging: Paging,
    export: ExportDep,
) -> Page[SubsidyLineRead] | Response:
    """The list's lines you may see (an operator: its own facilities'), adjustments first, each with
    every condition's verdict and reason. With `Accept: text/csv` or XLSX, all of them as a file."""
    list_id = await subsidies.list_id_of(
        session=session, caller=caller, month=month, district_code=district_code
    )

    async def page_of(page_session: AsyncSession, page: PageParams) -> Page[SubsidyLineRead]:
        rows, cursor = await subsidies.lines_page(
            session=page_session, caller=caller, page=page, list_id=list_id
        )
        return Page[SubsidyLineRead](items=[line_read(line, lst) for line, lst in rows], next_cursor=cursor)

    if export.wanted:

        async def rows_of(page_session: AsyncSession, page: PageParams) -> Page[SubsidyLineRow]:
            lines = await page_of(page_session, page)
            return Page[SubsidyLineRow](
                items=[line_row(r) for r in lines.items], next_cursor=lines.next_cursor
            )

        return await export.respond(rows_of, name=f"subsidies-{district_code}-{month}", model=SubsidyLineRow)
    return await page_of(session, paging)


@router.get("/subsidy-lines", response_model=Page[SubsidyLineRead])
async def list_subsidy_lines(
    session: SessionDep,
    caller: Reader,
    paging: Paging,
    facility_id: Annotated[str | None, Query(max_length=36)] = None,
    month: Annotated[Month | None, Query()] = None,
    newest_first: Annotated[bool, Query(description="The latest month's lines first")] = False,
) -> Page[SubsidyLineRead]:
    """Lines you may see across lists (an operator: its own facilities'), by month."""
    rows, cursor = await subsidies.lines_page(
        session=session,
        caller=caller,
        page=paging,
        facility_id=facility_id,
        month=month,
        newest_first=newest_first,
    )
    return Page[SubsidyLineRead](items=[line_read(line, lst) for line, lst in rows], next_cursor=cursor)


@router.put("/subsidy-lists/{month}/{district_code}/lines/{line_id}/payment", response_model=SubsidyLineRead)
async def record_subsidy_payment(
    month: MonthPath,
    district_code: District,
    line_id: IdPath,
    body: PaymentCreate,
    session: SessionDep,
    caller: Reviewer,
) -> SubsidyLineRead:
    """FINANCE records the payment of a published list's line: amount paid, date, its reference.
    The same record again changes nothing; a different one is a 409."""
    found = await subsidies.get_list(
        session=session, caller=caller, month=month, district_code=district_code, for_update=True
    )
    line = await subsidies.record_payment(
        session=session, caller=caller, subsidy_list=found, line_id=line_id, data=body
    )
    return line_read(line, found)
