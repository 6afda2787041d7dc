"""A facility's staff roster from an operator's spreadsheet (`POST /v1/imports/roster`)."""

from __future__ import annotations

from fastapi import APIRouter

from services.workforce.deps import WorkforceDep
from services.workforce.router.common import Writer
from services.workforce.service import imports
from shared.imports import DryRun, ImportReport, Upload, read_upload, upload_example
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["imports"])


@router.post("/imports/roster", response_model=ImportReport, openapi_extra=upload_example("花名册.xlsx"))
async def import_roster(
    file: Upload, session: SessionDep, caller: Writer, workforce: WorkforceDep, dry_run: DryRun = False
) -> ImportReport:
    """Practitioners, their certificates and their employments from an XLSX or CSV sheet (headers in
    Chinese or English), one person per row, through the same checks as the API (ID numbers
    validated and encrypted, hiring only at your own approved facilities, bans and certificates
    checked). The same sheet again creates nothing new. `dry_run=true` says what each row would do
    and changes nothing. A verdict per row, a wrong field named."""
    table = await read_upload(file, imports.COLUMNS)
    return await imports.import_roster(
        session=session, workforce=workforce, caller=caller, table=table, dry_run=dry_run
    )
