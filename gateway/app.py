from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from gateway.audit import AuditWriter, ChainKey
from gateway.auth import ClientStatus, TokenCache
from gateway.balancer import split_bases
from gateway.checkpoints import checkpoint_publisher
from gateway.config import GatewaySettings
from gateway.deprecations import DeprecationNotices, Deprecations
from gateway.device_credentials import DeviceBus
from gateway.devices import router as devices_router
from gateway.docs import install_docs
from gateway.frontdoor import FrontDoor, GatewayMetrics, Runtime
from gateway.hashing import SecretHasher
from gateway.models import ApiClient, ParentAccount
from gateway.oauth import router as oauth_router
from gateway.openapi import ServiceDocuments, gateway_document, merge
from gateway.parents import PARENT_PREFIX, SEALED_COLUMNS, PhoneKeys
from gateway.proxy import Forwarder
from gateway.ratelimit import make_limiter
from gateway.router import router
from gateway.routes import RouteTable
from gateway.sign_in import SignInGuard
from gateway.upstream import HttpxUpstream, NativeUpstream, UpstreamClient
from gateway.views import Views
from shared.bounded import settle, stop_task
from shared.errors import install_error_handlers
from shared.identity import IdentitySigner
from shared.jsonlimits import JsonLimits
from shared.logging import configure_logging
from shared.observability import Metrics, MetricsListener, Readiness, health_router
from shared.operation_ids import operation_id
from shared.pii_keys import refuse_lost_keys
from shared.tracing import FASTAPI_TELEMETRY_OFF, configure_tracing, flush_traces

TITLE = "Cradle API"
SHUTDOWN_STEP_SECONDS = 10.0


def create_app(
    settings: GatewaySettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """`transport` lets tests mount the services' ASGI apps in-process; in production it is the
    network."""
    settings = settings or GatewaySettings()
    metrics = Metrics("gateway")
    signer = IdentitySigner(settings.internal_signing_key.get_secret_value())
    gateway_metrics = GatewayMetrics(metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(service="gateway", fmt=settings.log_format, level=settings.log_level)
        configure_tracing("gateway")
        engine = settings.engine()
        limits = httpx.Limits(
            max_connections=settings.upstream_max_connections,
            max_keepalive_connections=settings.upstream_max_connections,
            keepalive_expiry=30,
        )
        pooled = httpx.AsyncClient(
            transport=transport or httpx.AsyncHTTPTransport(limits=limits, retries=0),
            timeout=httpx.Timeout(
                settings.upstream_timeout_seconds,
                connect=settings.upstream_connect_timeout_seconds,
                pool=settings.upstream_connect_timeout_seconds,
            ),
            follow_redirects=False,
            trust_env=False,
        )
        client: UpstreamClient
        if transport is None and settings.upstream_client == "native":
            client = NativeUpstream(
                max_connections=settings.upstream_max_connections,
                keepalive_seconds=settings.upstream_keepalive_seconds,
                connect_timeout=settings.upstream_connect_timeout_seconds,
                timeout=settings.upstream_timeout_seconds,
                fallback=pooled,
            )
        else:
            client = HttpxUpstream(pooled)

        async def client_enabled(client_id: str) -> bool | None:
            async with engine.connect() as connection:
                if client_id.startswith(PARENT_PREFIX):
                    query = select(ParentAccount.enabled).where(ParentAccount.parent_id == client_id)
                else:
                    query = select(ApiClient.enabled).where(ApiClient.client_id == client_id)
                return (await connection.execute(query)).scalar_one_or_none()

        chain_key = ChainKey.from_base64(settings.audit_hmac_key.get_secret_value())
        audit = AuditWriter(
            engine,
            key=chain_key,
            flush_seconds=settings.audit_flush_seconds,
            batch_size=settings.audit_batch_size,
            max_pending=settings.audit_max_pending,
            retention=timedelta(days=settings.audit_retention_days),
        )
        # The front door's runtime, made whole here: nothing in it is filled in later.
        runtime = Runtime(
            settings=settings,
            routes=RouteTable(settings.routes),
            metrics=gateway_metrics,
            tokens=TokenCache(settings, signer),
            clients=ClientStatus(client_enabled, ttl=settings.client_cache_seconds),
            limiter=make_limiter(settings.redis_url, prefix=settings.redis_key_prefix),
            forwarder=Forwarder(
                client=client,
                upstreams=settings.upstreams(),
                max_body_bytes=settings.max_body_bytes,
                retry_after=settings.retry_after_seconds,
                signer=signer,
                file_timeout=settings.upstream_file_timeout_seconds,
                eject_seconds=settings.upstream_eject_seconds,
            ),
            audit=audit,
        )
        app.state.runtime = runtime
        checkpoints = checkpoint_publisher(settings, engine, hmac_key_id=chain_key.key_id)
        app.state.audit_key, app.state.checkpoints = chain_key, checkpoints
        first_replicas = {name: split_bases(bases)[0] for name, bases in settings.upstreams().items()}
        documents = ServiceDocuments(client, first_replicas, retry_seconds=settings.openapi_refresh_seconds)
        app.state.hasher = await asyncio.to_thread(SecretHasher, settings.secret_hashing)
        app.state.sign_in = SignInGuard.from_settings(settings, runtime.limiter)
        app.state.phone_keys = PhoneKeys.from_settings(settings)
        app.state.device_bus = DeviceBus.from_settings(settings)
        app.state.engine = engine
        app.state.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        app.state.documents = documents
        app.state.forwarder = runtime.forwarder
        app.state.views = Views(
            forwarder=runtime.forwarder,
            timeout=settings.view_part_timeout_seconds,
            targets=settings.plan_targets,
        )
        await audit.start()
        checkpoints.start()
        listener = await MetricsListener.started(metrics=metrics, readiness=readiness, settings=settings)
        app.state.metrics_listener = listener
        warm = asyncio.create_task(documents.refresh())
        try:
            yield
        finally:
            await listener.stop()
            await stop_task("openapi warm-up", warm, seconds=SHUTDOWN_STEP_SECONDS)
            await documents.stop(seconds=SHUTDOWN_STEP_SECONDS)
            await audit.stop()
            # After the writer: the last checkpoint covers its final flush.
            await settle("audit checkpoints", checkpoints.stop(), seconds=30)
            app.state.sign_in.close()
            await settle("rate limiter", runtime.limiter.close(), seconds=SHUTDOWN_STEP_SECONDS)
            await settle("upstream client", client.aclose(), seconds=SHUTDOWN_STEP_SECONDS)
            await settle("database pool", engine.dispose(), seconds=SHUTDOWN_STEP_SECONDS)
            await flush_traces()

    app = FastAPI(
        title=TITLE,
        lifespan=lifespan,
        telemetry=FASTAPI_TELEMETRY_OFF,
        version="0.1.0",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    # Inside the front door: it reaches only the gateway's own paths (forwarded bodies are streamed,
    # bounded by max_body_bytes, and measured by the service that parses them).
    app.add_middleware(JsonLimits, max_body_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth)
    app.add_middleware(FrontDoor, state=app.state)
    app.include_router(oauth_router)
    app.include_router(router)
    app.include_router(devices_router)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        services = await request.app.state.documents.refresh()
        return JSONResponse(request.app.state.deprecations.mark(merge(gateway_document(), services)))

    install_docs(app, title=TITLE)
    # Declared once (gateway/deprecations.py): notices on every answer, `deprecated` in the document.
    app.state.deprecations = Deprecations(settings.deprecations)
    app.add_middleware(DeprecationNotices, deprecations=app.state.deprecations)

    async def database_ready() -> str | None:
        async with app.state.engine.connect() as connection:
            await asyncio.wait_for(connection.execute(text("SELECT 1")), timeout=2)
        return None

    async def audit_keeping_up() -> str | None:
        runtime: Runtime | None = getattr(app.state, "runtime", None)
        if runtime is not None and runtime.audit.overloaded:
            return "too many records waiting to be written"
        return None

    async def checkpoints_publishable() -> str | None:
        checkpoints = getattr(app.state, "checkpoints", None)
        return checkpoints.bus.concern() if checkpoints is not None else None

    def service_up(name: str) -> Callable[[], Awaitable[str | None]]:
        async def probe() -> str | None:
            return await _service_down(app.state.runtime, name)

        return probe

    # Unready (503) when its database or the audit writer fails; a service down makes only its own
    # paths 503, and NATS away only delays the audit checkpoints: degraded, with the reason.
    readiness = Readiness(
        "gateway",
        unready={"database": database_ready, "audit": audit_keeping_up},
        degraded={
            "nats": checkpoints_publishable,
            **{name: service_up(name) for name in settings.upstreams()},
        },
    )
    app.state.readiness = readiness
    app.include_router(health_router("gateway", readiness))

    async def sample_audit() -> None:
        runtime: Runtime | None = getattr(app.state, "runtime", None)
        if runtime is not None:
            gateway_metrics.audit_pending.set(len(runtime.audit.pending))
            gateway_metrics.audit_written.set(runtime.audit.written)

    metrics.samplers["audit"] = sample_audit

    refuse_lost_keys(
        app,
        service="gateway",
        columns=SEALED_COLUMNS,
        database_url=settings.database_url,
        configured=settings.pii_keys,
    )
    return app


async def _service_down(runtime: Runtime, name: str) -> str | None:
    """None when every replica of the service answers its /healthz within a second, else which do
    not and why."""
    bases = runtime.forwarder.balancer.bases(name)

    async def down(base: str) -> str | None:
        try:
            status, _ = await runtime.forwarder.client.get(f"{base}/healthz", timeout=1.0)
        except httpx.HTTPError as exc:
            return f"down: {type(exc).__name__}"
        return None if status == 200 else f"down: HTTP {status}"

    found = await asyncio.gather(*(down(base) for base in bases))
    if len(bases) == 1:
        return found[0]
    troubles = [f"{base} {why}" for base, why in zip(bases, found, strict=True) if why is not None]
    return "; ".join(troubles) or None
