"""guidance: stations, families, home visits, sessions and resources for every child's age."""

from __future__ import annotations

from fastapi import FastAPI

from services.guidance.config import GuidanceSettings
from services.guidance.models import metadata
from services.guidance.router import ROUTERS
from services.guidance.service.common import Guidance
from shared.service import create_service_app


def create_app(settings: GuidanceSettings | None = None) -> FastAPI:
    settings = settings or GuidanceSettings()
    app = create_service_app(
        settings=settings,
        title="Cradle guidance",
        metadata=metadata,
        routers=ROUTERS,
    )
    app.state.guidance = Guidance.from_settings(settings)
    return app
