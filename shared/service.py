"""`create_service_app`: the lifespan every service shares (engine, NATS, outbox relay, consumers),
the error handlers, request context, health and metrics. A service adds its routers and handlers."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.bounded import settle
from shared.db import ON_OUTBOX_COMMIT, is_sqlite, refresh_planner_statistics, session_scope
from shared.errors import install_error_handlers
from shared.events.bus import EventBus
from shared.events.consumer import (
    BatchHandler,
    ConsumerPolicy,
    EventConsumer,
    Handler,
    dead_letter_concern,
)
from shared.events.deadletters import waiting_counts
from shared.events.outbox import OutboxRelay, OutboxWriter, outbox_session_info
from shared.events.permissions import inbox_prefix, streams_used
from shared.events.streams import Namespace
from shared.i18n import Localization
from shared.identity import IdentityVerifier, current_caller
from shared.jsonlimits import JsonLimits
from shared.logging import configure_logging
from shared.observability import Metrics, MetricsListener, Readiness, health_router, install_observability
from shared.operation_ids import operation_id
from shared.settings import ServiceSettings
from shared.tracing import FASTAPI_TELEMETRY_OFF, configure_tracing, flush_traces


def create_service_app(
    *,
    settings: ServiceSettings,
    title: str,
    metadata: MetaData,
    routers: Sequence[APIRouter],
    handlers: dict[str, Handler] | None = None,
    batch_handler: BatchHandler | None = None,
    session_context: dict[str, object] | None = None,
) -> FastAPI:
    """`session_context` goes into every session's `info`, for code that has only a session (event
    handlers, service functions) and needs the service's configuration. A `batch_handler` has the
    consumers handle each fetched batch in one transaction (shared/events/consumer.py), `handlers`
    still handling any message alone."""
    service = settings.service_name
    metrics = Metrics(service)
    namespace = Namespace(settings.event_namespace)
    outbox = metadata.tables["outbox"]
    inbox = metadata.tables["inbox"]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(service=service, fmt=settings.log_format, level=settings.log_level)
        configure_tracing(service)
        engine = settings.engine()
        bus = EventBus(
            url=settings.nats_url,
            namespace=namespace,
            replicas=settings.nats_replicas,
            client_name=service,
            streams=streams_used(namespace, service),
            credentials=settings.nats_creds,
            tls_ca=settings.nats_tls_ca,
            inbox_prefix=inbox_prefix(service),
        )
        session_info = outbox_session_info(OutboxWriter(outbox, namespace, f"/cradle/{service}"))
        session_info.update(session_context or {})
        maker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            engine, expire_on_commit=False, info=session_info
        )
        relay = OutboxRelay(
            maker=maker,
            table=outbox,
            bus=bus,
            metrics=metrics,
            lock_rows=not is_sqlite(settings.database_url),
            batch_size=settings.outbox_batch_size,
            poll_seconds=settings.outbox_poll_seconds,
            publish_timeout=settings.publish_timeout_seconds,
            keep_sent=timedelta(days=settings.outbox_keep_sent_days),
        )
        session_info[ON_OUTBOX_COMMIT] = relay.wake  # sessions copy this dict when they open
        bus.on_reconnect(relay.wake)
        policy = ConsumerPolicy(
            max_deliver=settings.consumer_max_deliver,
            ack_wait_seconds=settings.consumer_ack_wait_seconds,
            backoff_seconds=tuple(settings.consumer_backoff_seconds),
        )
        consumers = [
            EventConsumer(
                service=service,
                source_service=source,
                handlers=by_type,
                bus=bus,
                maker=maker,
                inbox=inbox,
                metrics=metrics,
                policy=policy,
                batch_handler=batch_handler,
            )
            for source, by_type in _group_by_source(handlers or {}).items()
        ]
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = maker
        app.state.bus = bus
        app.state.relay = relay
        app.state.consumers = consumers
        metrics.samplers["outbox"] = lambda: _sample_outbox(relay, metrics)
        metrics.samplers["consumers"] = lambda: _sample_consumers(bus, metrics, app.state.durables)
        metrics.samplers["dead_letters"] = lambda: _sample_dead_letters(bus, metrics, app.state.durables)
        listener = await MetricsListener.started(metrics=metrics, readiness=readiness, settings=settings)
        app.state.metrics_listener = listener
        await _refresh_statistics(engine)  # a database down at start: 503s until it returns, not a crash
        maintenance = asyncio.create_task(_refresh_statistics_hourly(engine), name="planner-statistics")
        bus.start()
        relay.start()
        for consumer in consumers:
            consumer.start()
        try:
            yield
        finally:
            maintenance.cancel()
            for consumer in consumers:
                await consumer.stop()
            await relay.stop()
            await bus.close()
            await listener.stop()
            # Bounded: a PostgreSQL connection's close that gets no answer must not hold the process.
            await settle("database pool", engine.dispose(), seconds=10)
            await flush_traces()

    app = FastAPI(
        title=title,
        lifespan=lifespan,
        version="0.1.0",
        generate_unique_id_function=operation_id,
        telemetry=FASTAPI_TELEMETRY_OFF,
    )
    app.state.metrics = metrics
    # (stream, durable) of every consumer this process runs, for the lag gauges; a service with
    # consumers of its own (monitoring's ingest and dead letters) adds them.
    app.state.durables = [(namespace.stream(source), service) for source in _group_by_source(handlers or {})]
    app.state.identity_verifier = IdentityVerifier(settings.internal_verify_key.get_secret_value())
    app.state.idempotency_table = metadata.tables.get("idempotency_record")
    install_error_handlers(app)
    app.add_middleware(JsonLimits, max_body_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth)
    install_observability(app, metrics)
    # Outermost: every reply, a refusal by the middleware inside included, in the caller's language.
    app.add_middleware(Localization)

    async def database_ready() -> str | None:
        async with app.state.engine.connect() as connection:
            await asyncio.wait_for(connection.execute(text("SELECT 1")), timeout=2)
        return None

    async def nats_ready() -> str | None:
        return app.state.bus.concern()

    async def dead_letters_waiting() -> str | None:
        return await dead_letter_concern(app.state.bus, service, consumers=bool(handlers))

    # The database down: nothing can be done (503). NATS away: writes go on and their events wait in
    # the outbox, so the process serves and says it is degraded.
    readiness = Readiness(
        service,
        unready={"database": database_ready},
        degraded={"nats": nats_ready, "dead_letters": dead_letters_waiting},
    )
    app.state.readiness = readiness
    app.include_router(health_router(service, readiness))
    for router in routers:
        # Every domain route verifies the gateway's identity token before anything else runs.
        app.include_router(router, dependencies=[Depends(current_caller)])
    return app


async def _sample_outbox(relay: OutboxRelay, metrics: Metrics) -> None:
    rows, oldest = await relay.backlog()
    metrics.outbox_backlog.labels(metrics.service).set(rows)
    age = (datetime.now(UTC) - _aware(oldest)).total_seconds() if oldest is not None else 0.0
    metrics.outbox_oldest_age.labels(metrics.service).set(max(age, 0.0))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite drops the offset


async def _sample_consumers(bus: EventBus, metrics: Metrics, durables: list[tuple[str, str]]) -> None:
    """num_pending per durable, from JetStream's consumer info: how far each consumer is behind."""
    if not durables or not bus.connected or bus.js is None:
        return
    infos = await asyncio.gather(
        *(bus.js.consumer_info(stream, durable) for stream, durable in durables), return_exceptions=True
    )
    for (stream, durable), info in zip(durables, infos, strict=True):
        if isinstance(info, BaseException):
            continue  # not declared yet (the consumer binds once the bus is there)
        metrics.consumer_pending.labels(metrics.service, stream, durable).set(info.num_pending or 0)
        metrics.consumer_ack_pending.labels(metrics.service, stream, durable).set(info.num_ack_pending or 0)


async def _sample_dead_letters(bus: EventBus, metrics: Metrics, durables: list[tuple[str, str]]) -> None:
    if not durables or not bus.connected or bus.js is None:
        return
    counts = await waiting_counts(bus.js, bus.namespace, metrics.service)
    for consumer in {durable for _, durable in durables} | set(counts):
        metrics.dead_letters_waiting.labels(metrics.service, consumer).set(counts.get(consumer, 0))


async def _refresh_statistics(engine: AsyncEngine) -> None:
    try:
        await refresh_planner_statistics(engine)
    except Exception as exc:  # statistics are an optimisation: never let them take the service down
        structlog.get_logger("cradle.db").warning("statistics_refresh_failed", error=str(exc)[:200])


async def _refresh_statistics_hourly(engine: AsyncEngine) -> None:
    while True:
        await asyncio.sleep(3600)
        await _refresh_statistics(engine)


def _group_by_source(handlers: dict[str, Handler]) -> dict[str, dict[str, Handler]]:
    grouped: dict[str, dict[str, Handler]] = defaultdict(dict)
    for event_type, handler in handlers.items():
        source = event_type.split(".")[1]
        grouped[source][event_type] = handler
    return dict(grouped)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with session_scope(request.app.state.sessionmaker) as session:
        yield session


# scope="function": the commit happens before the response is sent, so a 2xx means committed.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
