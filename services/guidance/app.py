from __future__ import annotations

from fastapi import FastAPI

from services.guidance.config import GuidanceSettings
from services.guidance.models import metadata
from shared.service import create_service_app


def create_app(settings: GuidanceSettings | None = None) -> FastAPI:
    return create_service_app(
        settings=settings or GuidanceSettings(),
        title="Cradle guidance",
        metadata=metadata,
        routers=[],
    )
