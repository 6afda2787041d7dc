from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.middleware import Middleware

from services.workforce import jobs
from services.workforce.config import WorkforceSettings
from services.workforce.handlers import HANDLERS
from services.workforce.models import metadata
from services.workforce.router import ROUTERS
from services.workforce.router.ban_check_path import PATH, DirectBanCheck
from services.workforce.service.ban_checks import CheckAudit, ban_check_counter
from services.workforce.service.common import ID_NUMBER, PHONE, WORKFORCE_SESSION_KEY, Workforce
from shared.background import running_beside
from shared.db import OneTrip
from shared.pii_keys import SealedColumn, refuse_lost_keys
from shared.service import create_service_app

# Every encrypted field, for the start-up key check and `cradle keys rotate`.
SEALED_COLUMNS = (
    SealedColumn("practitioner", "id_number_key_id", "id_number_encrypted", ID_NUMBER),
    SealedColumn("practitioner", "phone_key_id", "phone_encrypted", PHONE),
    SealedColumn("ban", "id_number_key_id", "id_number_encrypted", ID_NUMBER),
)


def create_app(settings: WorkforceSettings | None = None) -> FastAPI:
    settings = settings or WorkforceSettings()
    workforce = Workforce.from_settings(settings)
    app = create_service_app(
        settings=settings,
        title="Cradle workforce",
        metadata=metadata,
        routers=ROUTERS,
        handlers=HANDLERS,
        session_context={WORKFORCE_SESSION_KEY: workforce},
    )
    app.state.workforce = workforce
    checks = ban_check_counter(app.state.metrics)
    # Innermost of the middleware (add_middleware would put it outermost, before metrics and ids).
    [check_route] = [
        route
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and route.path == PATH and "POST" in route.methods
    ]
    app.user_middleware.append(Middleware(DirectBanCheck, route=check_route))
    shared_lifespan = app.router.lifespan_context

    # The scheduled jobs run beside the shared lifespan's engine, relay and consumers.
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with shared_lifespan(app):
            app.state.ban_trips = OneTrip(app.state.engine)
            app.state.check_audit = CheckAudit(app.state.ban_trips, checks=checks)
            scheduled = (
                jobs.run_forever(
                    maker=app.state.sessionmaker,
                    workforce=app.state.workforce,
                    interval_seconds=settings.jobs_interval_seconds,
                )
                if settings.jobs_interval_seconds > 0
                else None
            )
            try:
                async with running_beside(scheduled, name="workforce-jobs"):
                    yield
            finally:
                app.state.ban_trips.close()

    app.router.lifespan_context = lifespan
    refuse_lost_keys(
        app,
        service="workforce",
        columns=SEALED_COLUMNS,
        database_url=settings.database_url,
        configured=settings.pii_keys,
    )
    return app
