"""Inspectors, 双随机 plans (draw, read, verify) and inspections (ad hoc, results, rectification)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.deps import DistrictFilter, IdFilter, Paging, PathId, Reader, SettingsDep, Writer
from services.monitoring.schemas import (
    InspectionCreate,
    InspectionRead,
    InspectorCreate,
    InspectorRead,
    InspectorUpdate,
    Month,
    PlanCreate,
    PlanRead,
    PlanVerification,
    RectificationCreate,
    ResultCreate,
)
from services.monitoring.service import inspections, plans
from shared.api import IfMatch, check_version, etag
from shared.clock import utcnow
from shared.export import EXPORT_RESPONSES, ExportDep
from shared.idempotency import Reply, idempotent
from shared.pagination import Page, PageParams, make_page
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["inspections"])
InspectionStatus = Annotated[str | None, Query(pattern=r"^(planned|completed|cancelled)$")]


# ---- inspectors ------------------------------------------------------------------------------


@router.post("/inspectors", status_code=201, response_model=InspectorRead, tags=["inspections"])
@idempotent(201)
async def add_inspector(body: InspectorCreate, session: SessionDep, caller: Writer) -> Reply:
    """Register an inspector of a district (the district's guidance centre or the EDU bureau)."""
    inspector = await plans.add_inspector(session=session, caller=caller, data=body, now=utcnow())
    return Reply(plans.inspector_read(inspector), {"Location": f"/v1/inspectors/{inspector.id}"})


@router.get("/inspectors", response_model=Page[InspectorRead], tags=["inspections"])
async def list_inspectors(
    session: SessionDep,
    caller: Reader,
    paging: Paging,
    district_code: DistrictFilter = None,
    active: bool | None = None,
) -> Page[InspectorRead]:
    return await plans.list_inspectors(
        session=session, caller=caller, paging=paging, district_code=district_code, active=active
    )


@router.patch("/inspectors/{inspector_id}", response_model=InspectorRead, tags=["inspections"])
async def update_inspector(
    inspector_id: PathId, body: InspectorUpdate, session: SessionDep, caller: Writer
) -> InspectorRead:
    """Retire an inspector (`active: false`): later draws leave them out."""
    inspector = await plans.get_inspector(session=session, caller=caller, inspector_id=inspector_id)
    return plans.inspector_read(await plans.update_inspector(session=session, inspector=inspector, data=body))


# ---- plans -----------------------------------------------------------------------------------


@router.post("/inspection-plans", status_code=201, response_model=PlanRead, tags=["inspections"])
@idempotent(201)
async def draw_plan(body: PlanCreate, session: SessionDep, caller: Writer, settings: SettingsDep) -> Reply:
    """Draw a district's 双随机 plan for a month: `sample_size` approved facilities, each paired with
    two of the district's active inspectors (none who inspected it in the previous month's draw).
    Facilities not yet inspected on site this year come first, riskier ones sooner. The seed and
    every input are stored (see `/verification`). Drawing the same month again replaces the plan
    (its inspections are cancelled) until one of them has a result (409)."""
    plan = await plans.draw_plan(session=session, caller=caller, data=body, settings=settings, now=utcnow())
    return Reply(await plans.to_read(session, plan), {"Location": f"/v1/inspection-plans/{plan.id}"})


@router.get("/inspection-plans", response_model=Page[PlanRead], tags=["inspections"])
async def list_plans(
    session: SessionDep,
    caller: Reader,
    paging: Paging,
    district_code: DistrictFilter = None,
    month: Annotated[Month | None, Query()] = None,
) -> Page[PlanRead]:
    """Plans you may see, newest month first."""
    return await plans.list_plans(
        session=session, caller=caller, paging=paging, district_code=district_code, month=month
    )


@router.get("/inspection-plans/{plan_id}", response_model=PlanRead, tags=["inspections"])
async def read_plan(plan_id: PathId, session: SessionDep, caller: Reader) -> PlanRead:
    plan = await plans.get_visible_plan(session=session, caller=caller, plan_id=plan_id)
    return await plans.to_read(session, plan)


@router.get("/inspection-plans/{plan_id}/verification", response_model=PlanVerification, tags=["inspections"])
async def verify_plan(plan_id: PathId, session: SessionDep, caller: Reader) -> PlanVerification:
    """Re-run the draw from the stored seed and inputs; `matches` says whether it gives the stored plan."""
    plan = await plans.get_visible_plan(session=session, caller=caller, plan_id=plan_id)
    return await plans.verify(session=session, plan=plan)


# ---- inspections -----------------------------------------------------------------------------


@router.post("/inspections", status_code=201, response_model=InspectionRead, tags=["inspections"])
@idempotent(201)
async def plan_inspection(body: InspectionCreate, session: SessionDep, caller: Writer) -> Reply:
    """An on-site inspection outside the monthly draw."""
    inspection = await inspections.create_adhoc(session=session, caller=caller, data=body, now=utcnow())
    headers = {"Location": f"/v1/inspections/{inspection.id}", **etag(inspection.version)}
    return Reply(inspections.to_read(inspection), headers)


@router.get(
    "/inspections", response_model=Page[InspectionRead], responses=EXPORT_RESPONSES, tags=["inspections"]
)
async def list_inspections(
    session: SessionDep,
    caller: Reader,
    paging: Paging,
    export: ExportDep,
    facility_id: IdFilter = None,
    district_code: DistrictFilter = None,
    status: InspectionStatus = None,
    plan_id: IdFilter = None,
) -> Page[InspectionRead] | Response:
    """Facilities see only their completed inspections. With `Accept: text/csv` or XLSX, every one
    the filters select, as a file."""
    filters = inspections.InspectionFilters(
        facility_id=facility_id, district_code=district_code, status=status, plan_id=plan_id
    )

    async def page_of(session: AsyncSession, page: PageParams) -> Page[InspectionRead]:
        rows = await inspections.list_inspections(session=session, caller=caller, filters=filters, page=page)
        items = [inspections.to_read(i) for i in rows]
        return make_page(items, limit=page.limit, position_of=lambda i: [i.id])

    if export.wanted:
        return await export.respond(page_of, name="inspections", model=InspectionRead)
    return await page_of(session, paging)


@router.get("/inspections/{inspection_id}", response_model=InspectionRead, tags=["inspections"])
async def read_inspection(inspection_id: PathId, session: SessionDep, caller: Reader) -> JSONResponse:
    inspection, _ = await inspections.get_visible_inspection(
        session=session, caller=caller, inspection_id=inspection_id
    )
    return JSONResponse(
        inspections.to_read(inspection).model_dump(mode="json"), headers=etag(inspection.version)
    )


@router.post("/inspections/{inspection_id}/result", response_model=InspectionRead, tags=["inspections"])
@idempotent(200)
async def record_result(
    inspection_id: PathId,
    body: ResultCreate,
    session: SessionDep,
    caller: Writer,
    settings: SettingsDep,
    if_match: IfMatch = None,
) -> Reply:
    """The checklist result, recorded once (409 after); publishes `inspection.completed`. `rectify`
    needs a future `rectify_by`; `pass` cannot have a failed item."""
    inspection, facility = await inspections.get_visible_inspection(
        session=session, caller=caller, inspection_id=inspection_id, for_update=True
    )
    check_version(inspection.version, if_match, what="inspection")
    inspection = await inspections.record_result(
        session=session,
        caller=caller,
        inspection=inspection,
        facility=facility,
        data=body,
        settings=settings,
        now=utcnow(),
    )
    return Reply(inspections.to_read(inspection), etag(inspection.version))


@router.post(
    "/inspections/{inspection_id}/rectification", response_model=InspectionRead, tags=["inspections"]
)
@idempotent(200)
async def record_rectification(
    inspection_id: PathId,
    body: RectificationCreate,
    session: SessionDep,
    caller: Writer,
    settings: SettingsDep,
    if_match: IfMatch = None,
) -> Reply:
    """The district confirms the facility rectified what failed; publishes `rectification.completed`."""
    inspection, _ = await inspections.get_visible_inspection(
        session=session, caller=caller, inspection_id=inspection_id, for_update=True
    )
    check_version(inspection.version, if_match, what="inspection")
    inspection = await inspections.record_rectification(
        session=session, caller=caller, inspection=inspection, data=body, settings=settings, now=utcnow()
    )
    return Reply(inspections.to_read(inspection), etag(inspection.version))
