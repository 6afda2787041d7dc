"""monitoring: cameras, CCTV events, alerts, incidents, random inspections and complaints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.monitoring import jobs
from services.monitoring.config import MonitoringSettings
from services.monitoring.handlers import HANDLERS
from services.monitoring.handlers.dead_letters import DURABLE as DEAD_LETTER_DURABLE
from services.monitoring.handlers.dead_letters import DeadLetterConsumer
from services.monitoring.handlers.ingest import DURABLE as INGEST_DURABLE
from services.monitoring.handlers.ingest import IngestConsumer
from services.monitoring.models import metadata
from services.monitoring.router import ROUTERS
from services.monitoring.service.complaint_access import NAME, PHONE, Complaints
from services.monitoring.service.ingest import Ingest, ingest_counter
from shared.background import running_beside
from shared.events.streams import Namespace
from shared.pii_keys import SealedColumn, refuse_lost_keys
from shared.service import create_service_app

# Every encrypted field, for the start-up key check and `cradle keys rotate`.
SEALED_COLUMNS = (
    SealedColumn("complaint", "name_key_id", "name_encrypted", NAME),
    SealedColumn("complaint", "phone_key_id", "phone_encrypted", PHONE),
)


def create_app(settings: MonitoringSettings | None = None) -> FastAPI:
    settings = settings or MonitoringSettings()
    app = create_service_app(
        settings=settings,
        title="Cradle monitoring",
        metadata=metadata,
        routers=ROUTERS,
        handlers=HANDLERS,
    )
    app.state.complaints = Complaints.from_settings(settings)
    refuse_lost_keys(
        app,
        service="monitoring",
        columns=SEALED_COLUMNS,
        database_url=settings.database_url,
        configured=settings.pii_keys,
    )
    ingested = ingest_counter(app.state.metrics)
    namespace = Namespace(settings.event_namespace)
    if settings.ingest_consumer_enabled:
        app.state.durables.append((namespace.ingest_stream, INGEST_DURABLE))
    app.state.durables.append((namespace.dead_letter_stream, DEAD_LETTER_DURABLE))
    shared_lifespan = app.router.lifespan_context

    # The ingest path, its NATS consumer and the scheduled jobs run beside the shared lifespan.
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with shared_lifespan(app):
            ingest = Ingest(settings=settings, maker=app.state.sessionmaker, counted=ingested)
            ingest.start()
            app.state.ingest = ingest
            ingest_consumer = None
            if settings.ingest_consumer_enabled:
                ingest_consumer = IngestConsumer(bus=app.state.bus, ingest=ingest, settings=settings)
                ingest_consumer.start()
            app.state.ingest_consumer = ingest_consumer
            dead_letters = DeadLetterConsumer(
                bus=app.state.bus,
                maker=app.state.sessionmaker,
                ack_wait_seconds=settings.consumer_ack_wait_seconds,
            )
            dead_letters.start()
            scheduled = (
                jobs.run_forever(
                    maker=app.state.sessionmaker,
                    settings=settings,
                    interval_seconds=settings.jobs_interval_seconds,
                    before=ingest.flush_presence,
                )
                if settings.jobs_interval_seconds > 0
                else None
            )
            try:
                async with running_beside(scheduled, name="monitoring-jobs"):
                    yield
            finally:
                await dead_letters.stop()
                if ingest_consumer is not None:
                    await ingest_consumer.stop()
                await ingest.stop()

    app.router.lifespan_context = lifespan
    return app
