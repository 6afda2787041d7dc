from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from gateway.config import GatewaySettings
from gateway.proxy import Forwarder
from gateway.router import router
from shared.db import make_engine
from shared.errors import install_error_handlers
from shared.identity import IdentitySigner
from shared.logging import configure_logging
from shared.observability import Metrics, health_router, install_observability


def create_app(
    settings: GatewaySettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """`transport` lets tests mount the services' ASGI apps in-process; in production it is the
    network."""
    settings = settings or GatewaySettings()
    metrics = Metrics("gateway")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(service="gateway", fmt=settings.log_format, level=settings.log_level)
        engine = make_engine(settings.database_url)
        client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.upstream_timeout_seconds, connect=2.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            follow_redirects=False,
        )
        app.state.engine = engine
        app.state.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        app.state.forwarder = Forwarder(
            client=client,
            upstreams=settings.upstreams(),
            signer=IdentitySigner(settings.internal_signing_key.get_secret_value()),
        )
        try:
            yield
        finally:
            await client.aclose()
            await engine.dispose()

    app = FastAPI(title="Cradle gateway", lifespan=lifespan, version="0.1.0")
    app.state.settings = settings
    install_error_handlers(app)
    install_observability(app, metrics)

    async def database_ready() -> str | None:
        async with app.state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return None

    app.include_router(health_router(metrics, {"database": database_ready}))
    app.include_router(router)
    return app
