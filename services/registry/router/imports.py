"""Legacy licensed facilities from a bureau's spreadsheet (`POST /v1/imports/facilities`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from services.registry.deps import SettingsDep
from services.registry.service import imports
from shared.identity import Identity, scope_guard
from shared.imports import DryRun, ImportReport, Upload, read_upload, upload_example
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["imports"])
Reviewer = Annotated[Identity, scope_guard("registry:review")]


@router.post("/imports/facilities", response_model=ImportReport, openapi_extra=upload_example("机构.xlsx"))
async def import_facilities(
    file: Upload, session: SessionDep, caller: Reviewer, settings: SettingsDep, dry_run: DryRun = False
) -> ImportReport:
    """EDU records facilities licensed before Cradle from an XLSX or CSV sheet (headers in Chinese or
    English), keyed by licence number: a new one is created `approved` with its licence, a known one
    updated where the sheet differs, the same sheet again changes nothing. `dry_run=true` says what
    each row would do and changes nothing. A verdict per row, a wrong field named."""
    table = await read_upload(file, imports.COLUMNS)
    return await imports.import_facilities(
        session=session, caller=caller, table=table, dry_run=dry_run, settings=settings
    )
