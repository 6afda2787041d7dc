from __future__ import annotations

from fastapi import FastAPI

from services.monitoring.config import MonitoringSettings
from services.monitoring.models import metadata
from shared.service import create_service_app


def create_app(settings: MonitoringSettings | None = None) -> FastAPI:
    return create_service_app(
        settings=settings or MonitoringSettings(),
        title="Cradle monitoring",
        metadata=metadata,
        routers=[],
    )
