from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from services.guidance.deps import Caller, IdempotencyDep, Writer
from services.guidance.router.common import Paging
from services.guidance.schemas import MAX_AGE_MONTHS, Audience, ResourceCreate, ResourceKind, ResourceRead
from services.guidance.service import resources
from services.guidance.service.resources import ResourceFilters
from services.guidance.service.sessions import require_writer
from shared.api import IdPath, etag
from shared.pagination import Page
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["resources"])


async def resource_filters(
    kind: ResourceKind | None = None,
    audience: Audience | None = None,
    topic: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{1,31}$")] = None,
    age_months: Annotated[int | None, Query(ge=0, le=MAX_AGE_MONTHS)] = None,
) -> ResourceFilters:
    return ResourceFilters(kind=kind, audience=audience, topic=topic, age_months=age_months)


@router.post("/resources", status_code=201, response_model=ResourceRead)
async def publish_resource(
    body: ResourceCreate, session: SessionDep, caller: Writer, idem: IdempotencyDep
) -> Response:
    """Publish an article, video, course or package (`guidance:write`). It is pushed at once to the
    families in need with a child in its age range; `pushed_families` says how many."""
    require_writer(caller)
    if replay := await idem.replay():
        return replay
    resource = await resources.publish(session=session, caller=caller, data=body)
    headers = {"Location": f"/v1/resources/{resource.id}", **etag(resource.version)}
    return await idem.respond(201, resources.to_read(resource), headers)


@router.get("/resources", response_model=Page[ResourceRead])
async def list_resources(
    session: SessionDep,
    _caller: Caller,
    paging: Paging,
    filters: Annotated[ResourceFilters, Depends(resource_filters)],
) -> Page[ResourceRead]:
    rows, cursor = await resources.list_resources(session=session, filters=filters, page=paging)
    return Page[ResourceRead](items=[resources.to_read(r) for r in rows], next_cursor=cursor)


@router.get("/resources/{resource_id}", response_model=ResourceRead)
async def read_resource(
    resource_id: IdPath, session: SessionDep, _caller: Caller, response: Response
) -> ResourceRead:
    resource = await resources.get_resource(session=session, resource_id=resource_id)
    response.headers.update(etag(resource.version))
    return resources.to_read(resource)
