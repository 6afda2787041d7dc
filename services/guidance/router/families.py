from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from services.guidance.deps import Caller, FamilyDep, FamilyToChangeDep, GuidanceDep, Writer, idempotent
from services.guidance.router.common import Paging
from services.guidance.schemas import (
    ChildCreate,
    FamilyBookingRead,
    FamilyCreate,
    FamilyCreated,
    FamilyRead,
    FamilySummary,
    FamilyUpdate,
    FeedItem,
    HomeVisitCreate,
    HomeVisitRead,
    LinkCode,
    LinkRedeem,
)
from services.guidance.service import families, resources, sessions, visits
from services.guidance.service.common import is_parent, linked_family_id
from services.guidance.service.families import FamilyFilters
from shared.api import IdPath, IfMatch, etag
from shared.clock import as_utc
from shared.errors import CradleError, error_response
from shared.idempotency import Reply
from shared.identity import PurposeDep, RequestIdDep
from shared.pagination import Page
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["families"])


async def family_filters(
    district_code: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
    town_code: Annotated[str | None, Query(pattern=r"^\d{9}$")] = None,
    in_need: bool | None = None,
    newborn: bool | None = None,
) -> FamilyFilters:
    return FamilyFilters(district_code=district_code, town_code=town_code, in_need=in_need, newborn=newborn)


@router.post("/families", status_code=201, response_model=FamilyCreated)
@idempotent(201)
async def register_family(
    body: FamilyCreate,
    session: SessionDep,
    caller: Caller,
    guidance: GuidanceDep,
    purpose: PurposeDep,
    request_id: RequestIdDep,
) -> Reply:
    """A station or district registers a family (the reply holds a one-time `link_code` for its
    parents, shown once); a parent registering from the app is linked to the new family at once."""
    found, code = await families.register_family(session=session, guidance=guidance, caller=caller, data=body)
    read = families.to_read(
        found, session=session, guidance=guidance, caller=caller, purpose=None, request_id=None
    )
    reply = FamilyCreated(
        **read.model_dump(),
        link_code=code,
        link_code_expires_at=as_utc(found.family.link_code_expires_at) if code else None,
    )
    headers = {"Location": f"/v1/families/{found.family.id}", **etag(found.family.version)}
    return Reply(reply, headers)


@router.get("/families", response_model=Page[FamilySummary])
async def list_families(
    session: SessionDep,
    caller: Caller,
    paging: Paging,
    filters: Annotated[FamilyFilters, Depends(family_filters)],
) -> Page[FamilySummary]:
    """The families of your area (a district its district, bureaus the city; a parent its own)."""
    linked = await linked_family_id(session, caller) if is_parent(caller) else None
    items, cursor = await families.list_families(
        session=session, caller=caller, filters=filters, page=paging, parent_family_id=linked
    )
    return Page[FamilySummary](items=items, next_cursor=cursor)


@router.post("/families/link", response_model=FamilyRead)
@idempotent(200)
async def link_family(
    body: LinkRedeem,
    session: SessionDep,
    caller: Caller,
    guidance: GuidanceDep,
    response: Response,
) -> Reply:
    """A parent redeems the one-time code its station gave it; the code then stops working."""
    outcome = await families.redeem_link_code(
        session=session, guidance=guidance, caller=caller, code=body.code
    )
    if isinstance(outcome, CradleError):
        return error_response(outcome)
    found = await families.detail(session, outcome)
    read = families.to_read(
        found, session=session, guidance=guidance, caller=caller, purpose=None, request_id=None
    )
    return Reply(read, etag(outcome.version))


@router.get("/families/{family_id}", response_model=FamilyRead)
async def read_family(
    family: FamilyDep,
    session: SessionDep,
    caller: Caller,
    guidance: GuidanceDep,
    purpose: PurposeDep,
    request_id: RequestIdDep,
    response: Response,
) -> FamilyRead:
    """Phones are masked unless you hold `guidance:pii` and send `X-Purpose`; such reads are audited."""
    response.headers.update(etag(family.version))
    found = await families.detail(session, family)
    return families.to_read(
        found, session=session, guidance=guidance, caller=caller, purpose=purpose, request_id=request_id
    )


@router.patch("/families/{family_id}", response_model=FamilyRead)
async def edit_family(
    body: FamilyUpdate,
    family: FamilyToChangeDep,
    session: SessionDep,
    caller: Caller,
    guidance: GuidanceDep,
    response: Response,
    if_match: IfMatch = None,
) -> FamilyRead:
    """Change the family's flags; send `If-Match` to be safe from overwriting another edit (412)."""
    updated = await families.update_family(
        session=session, caller=caller, family=family, data=body, if_match=if_match
    )
    response.headers.update(etag(updated.version))
    found = await families.detail(session, updated)
    return families.to_read(
        found, session=session, guidance=guidance, caller=caller, purpose=None, request_id=None
    )


@router.post("/families/{family_id}/children", status_code=201, response_model=FamilyRead)
@idempotent(201)
async def add_child(
    body: ChildCreate,
    family: FamilyToChangeDep,
    session: SessionDep,
    caller: Caller,
    guidance: GuidanceDep,
) -> Reply:
    """A child born (or newly cared for) in the family."""
    updated = await families.add_child(session=session, caller=caller, family=family, data=body)
    found = await families.detail(session, updated)
    read = families.to_read(
        found, session=session, guidance=guidance, caller=caller, purpose=None, request_id=None
    )
    return Reply(read, etag(updated.version))


@router.post("/families/{family_id}/link-code", status_code=201, response_model=LinkCode)
async def reissue_link_code(
    family: FamilyToChangeDep, session: SessionDep, caller: Caller, guidance: GuidanceDep
) -> LinkCode:
    """A new one-time link code for the family's parents (the previous one stops working). Not
    idempotent by key: a repeat makes another code, which is what a caller who lost the reply needs."""
    code = await families.reissue_link_code(session=session, guidance=guidance, caller=caller, family=family)
    assert family.link_code_expires_at is not None
    return LinkCode(link_code=code, link_code_expires_at=as_utc(family.link_code_expires_at))


@router.get("/families/{family_id}/home-visits", response_model=Page[HomeVisitRead])
async def family_visits(family: FamilyDep, session: SessionDep, paging: Paging) -> Page[HomeVisitRead]:
    rows, cursor = await visits.visits_of(session=session, family=family, page=paging)
    return Page[HomeVisitRead](items=[visits.to_read(v) for v in rows], next_cursor=cursor)


@router.get("/families/{family_id}/bookings", response_model=Page[FamilyBookingRead])
async def family_bookings(family: FamilyDep, session: SessionDep, paging: Paging) -> Page[FamilyBookingRead]:
    """The family's bookings, the latest session first."""
    rows, cursor = await sessions.bookings_of_family(session=session, family=family, page=paging)
    items = [
        FamilyBookingRead(**sessions.booking_read(b).model_dump(), session=sessions.to_read(s))
        for b, s in rows
    ]
    return Page[FamilyBookingRead](items=items, next_cursor=cursor)


@router.get("/families/{family_id}/feed", response_model=Page[FeedItem])
async def family_feed(family: FamilyDep, session: SessionDep, paging: Paging) -> Page[FeedItem]:
    """Resources that fit each child's age today, most relevant first, then newest (see the
    service's `feed` for how relevance is counted)."""
    items, cursor = await resources.feed(session=session, family=family, page=paging)
    return Page[FeedItem](items=items, next_cursor=cursor)


@router.post("/home-visits", status_code=201, response_model=HomeVisitRead)
@idempotent(201)
async def record_visit(body: HomeVisitCreate, session: SessionDep, caller: Writer) -> Reply:
    """A home visit (上门指导) to a family of your area (`guidance:write`)."""
    visit = await visits.record_visit(session=session, caller=caller, data=body)
    headers = {"Location": f"/v1/home-visits/{visit.id}", "ETag": '"1"'}
    return Reply(visits.to_read(visit), headers)


@router.get("/home-visits/{visit_id}", response_model=HomeVisitRead)
async def read_visit(
    visit_id: IdPath, session: SessionDep, caller: Caller, response: Response
) -> HomeVisitRead:
    visit = await visits.get_visible_visit(session=session, caller=caller, visit_id=visit_id)
    response.headers["ETag"] = '"1"'  # a visit is a record: never edited
    return visits.to_read(visit)
