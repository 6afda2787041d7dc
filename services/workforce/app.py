from __future__ import annotations

from fastapi import FastAPI

from services.workforce.config import WorkforceSettings
from services.workforce.handlers import HANDLERS
from services.workforce.models import metadata
from shared.service import create_service_app


def create_app(settings: WorkforceSettings | None = None) -> FastAPI:
    return create_service_app(
        settings=settings or WorkforceSettings(),
        title="Cradle workforce",
        metadata=metadata,
        routers=[],
        handlers=HANDLERS,
    )
