from __future__ import annotations

from fastapi import FastAPI

from services.registry.config import RegistrySettings
from services.registry.handlers import HANDLERS
from services.registry.models import metadata
from services.registry.public import public_router
from services.registry.router import router
from shared.service import create_service_app


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    return create_service_app(
        settings=settings or RegistrySettings(),
        title="Cradle registry",
        metadata=metadata,
        routers=[router, public_router],
        handlers=HANDLERS,
    )
