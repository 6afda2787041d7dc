"""Dependencies monitoring's routes share: who is calling (by scope), settings, the ingest path,
paging, path ids and ETags."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from services.monitoring.config import MonitoringSettings
from services.monitoring.service.ingest import Ingest
from shared.api import any_scope
from shared.identity import Identity, scope_guard
from shared.pagination import PageParams, page_params


async def settings_of(request: Request) -> MonitoringSettings:
    return request.app.state.settings


async def ingest_of(request: Request) -> Ingest:
    return request.app.state.ingest


Reader = Annotated[Identity, scope_guard("monitoring:read")]
Writer = Annotated[Identity, scope_guard("monitoring:write")]
# The video systems' senders post CCTV event batches and nothing else.
Sender = Annotated[Identity, scope_guard("monitoring:ingest")]
# Parents report incidents through the app and read back their own reports.
Reporter = Annotated[Identity, any_scope("monitoring:write", "parent")]
ReportReader = Annotated[Identity, any_scope("monitoring:read", "parent")]
SettingsDep = Annotated[MonitoringSettings, Depends(settings_of)]
IngestDep = Annotated[Ingest, Depends(ingest_of)]
Paging = Annotated[PageParams, Depends(page_params)]
PathId = Annotated[str, Path(max_length=64)]
DistrictFilter = Annotated[str | None, Query(pattern=r"^\d{6}$")]
IdFilter = Annotated[str | None, Query(max_length=64)]
