from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.middleware import Middleware

from services.registry.config import RegistrySettings
from services.registry.handlers import HANDLERS
from services.registry.models import metadata
from services.registry.router import ROUTERS
from services.registry.router.search_path import DirectSearch, SearchRoute
from services.registry.service.directory import ON_DIRECTORY_WRITE, FacilityDirectory
from services.registry.service.fees import FEE_CAPS
from shared.service import create_service_app


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()
    directory = FacilityDirectory(poll_seconds=settings.directory_poll_seconds)
    app = create_service_app(
        settings=settings,
        title="Cradle registry",
        metadata=metadata,
        routers=ROUTERS,
        handlers=HANDLERS,
        session_context={ON_DIRECTORY_WRITE: directory.mark_stale, FEE_CAPS: settings.fee_caps},
    )
    # Innermost of the middleware (add_middleware would put it outermost, before metrics and ids).
    app.user_middleware.append(Middleware(DirectSearch, routes=search_routes()))
    shared_lifespan = app.router.lifespan_context

    # The in-memory directory the searches read, kept current beside the shared lifespan.
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with shared_lifespan(app):
            directory.start(app.state.sessionmaker)
            app.state.directory = directory
            try:
                yield
            finally:
                await directory.stop()

    app.router.lifespan_context = lifespan
    return app


def search_routes() -> dict[str, SearchRoute]:
    """The two search routes DirectSearch answers the plain requests of."""
    gets = {
        route.path: route
        for r in ROUTERS
        for route in r.routes
        if isinstance(route, APIRoute) and "GET" in route.methods
    }
    return {
        "/v1/public/facilities": SearchRoute(gets["/v1/public/facilities"], public=True, scope=None),
        "/v1/facilities": SearchRoute(gets["/v1/facilities"], public=False, scope="registry:read"),
    }
