from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.guidance.schemas import Figures
from services.guidance.service import figures
from services.guidance.service.common import READ_SCOPE, WRITE_SCOPE, is_parent
from shared.clock import shanghai_today
from shared.errors import Forbidden
from shared.identity import AuthenticatedDep
from shared.service import SessionDep

router = APIRouter(prefix="/v1/guidance", tags=["figures"])


@router.get("/figures", response_model=Figures)
async def read_figures(
    request: Request,
    session: SessionDep,
    caller: AuthenticatedDep,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    district_code: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
) -> Figures:
    """The plan's figures for a year (default: this year): numerators and denominators, city-wide
    and per district (`district_code` keeps one district's row). For `/v1/indicators`."""
    if is_parent(caller) or not any(
        caller.has_scope(s) for s in (READ_SCOPE, WRITE_SCOPE, "indicators:read")
    ):
        raise Forbidden("This needs the `guidance:read` or `indicators:read` scope.")
    target = request.app.state.settings.offline_sessions_target
    return await figures.figures(
        session=session, year=year or shanghai_today().year, target=target, district_code=district_code
    )
