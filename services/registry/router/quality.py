"""The quality framework: the versioned dimensions and items assessments are graded by."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from services.registry.models import QualityFramework
from services.registry.schemas import QualityFrameworkCreate, QualityFrameworkRead
from services.registry.service import quality
from shared.errors import NotFound
from shared.i18n import tr
from shared.idempotency import Reply, idempotent
from shared.identity import Identity, scope_guard
from shared.pagination import Page, PageParams, page_params
from shared.service import SessionDep

router = APIRouter(prefix="/v1/quality", tags=["quality"])
Reader = Annotated[Identity, scope_guard("registry:read")]
Reviewer = Annotated[Identity, scope_guard("registry:review")]
Paging = Annotated[PageParams, Depends(page_params)]


def to_read(framework: QualityFramework) -> QualityFrameworkRead:
    return QualityFrameworkRead.model_validate(framework, from_attributes=True)


@router.get("/frameworks", response_model=Page[QualityFrameworkRead])
async def list_frameworks(session: SessionDep, _caller: Reader, paging: Paging) -> Page[QualityFrameworkRead]:
    """Every version of the quality framework, newest first; the newest is the one in force."""
    rows, cursor = await quality.frameworks(session=session, page=paging)
    return Page[QualityFrameworkRead](items=[to_read(f) for f in rows], next_cursor=cursor)


@router.get("/frameworks/current", response_model=QualityFrameworkRead)
async def current_framework(session: SessionDep, _caller: Reader) -> QualityFrameworkRead:
    """The version new assessments are graded by."""
    framework = await quality.current_framework(session=session)
    if framework is None:
        raise NotFound(tr("No quality framework has been published."))
    return to_read(framework)


@router.get("/frameworks/{version}", response_model=QualityFrameworkRead)
async def read_framework(
    session: SessionDep, _caller: Reader, version: Annotated[int, Path(ge=1, le=2_147_483_647)]
) -> QualityFrameworkRead:
    return to_read(await quality.framework_version(session=session, version=version))


@router.post("/frameworks", status_code=201, response_model=QualityFrameworkRead)
@idempotent(201)
async def publish_framework(body: QualityFrameworkCreate, session: SessionDep, caller: Reviewer) -> Reply:
    """EDU publishes a new version of the dimensions and items; earlier versions never change, and
    each assessment keeps the version it was graded by."""
    framework = await quality.publish_framework(session=session, caller=caller, data=body)
    return Reply(to_read(framework), {"Location": f"/v1/quality/frameworks/{framework.version}"})
