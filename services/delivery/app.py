"""delivery: the events each caller may read, pushed to its signed webhooks (Standard Webhooks)
and served as a feed (pages and Server-Sent Events)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.delivery.config import DeliverySettings
from services.delivery.handlers import HANDLERS, on_events
from services.delivery.models import metadata
from services.delivery.router import ROUTERS
from services.delivery.router.events import Signal
from services.delivery.service.log import ON_DELIVERIES_COMMIT
from services.delivery.service.sender import Sender
from services.delivery.service.targets import TargetPolicy
from shared.service import create_service_app


class _Wake:
    """Called after a commit that recorded events or owes deliveries; bound once the lifespan has
    made the sender and the streams' signal."""

    def __init__(self) -> None:
        self.sender: Sender | None = None
        self.signal: Signal | None = None

    def __call__(self) -> None:
        if self.sender is not None:
            self.sender.wake()
        if self.signal is not None:
            self.signal.notify()


def create_app(settings: DeliverySettings | None = None) -> FastAPI:
    settings = settings or DeliverySettings()
    wake = _Wake()
    app = create_service_app(
        settings=settings,
        title="Cradle delivery",
        metadata=metadata,
        routers=ROUTERS,
        handlers=HANDLERS,
        batch_handler=on_events,
        session_context={ON_DELIVERIES_COMMIT: wake},
    )
    app.state.target_policy = TargetPolicy.of(
        allow_http_loopback=settings.allow_http_loopback, allowed_networks=settings.allowed_networks
    )
    app.state.feed_signal = Signal()
    shared_lifespan = app.router.lifespan_context

    # The sender runs beside the shared lifespan's engine, relay and consumers.
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with shared_lifespan(app):
            sender = Sender(maker=app.state.sessionmaker, engine=app.state.engine, settings=settings)
            app.state.sender = sender
            wake.sender, wake.signal = sender, app.state.feed_signal
            sender.start()
            try:
                yield
            finally:
                wake.sender = None
                await sender.stop()

    app.router.lifespan_context = lifespan
    return app
