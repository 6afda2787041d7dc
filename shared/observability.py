"""Request ids, metrics and readiness for every process.

The public port answers `/healthz` and a bare `/readyz` (its status only). `/metrics` and the
readiness details (`/readyz` with its reasons) are served on a listener of their own
(`<PREFIX>_METRICS_HOST`/`_PORT`), which only the operator's network reaches, as Prometheus expects."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import Field
from pydantic_settings import BaseSettings
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import tracing
from shared.bounded import settle, within

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

ReadinessCheck = Callable[[], Awaitable[str | None]]  # returns None when ready, else the reason
Sampler = Callable[[], Awaitable[None]]  # refreshes gauges just before a scrape
CHECK_SECONDS = 3.0
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # probes: no log line, no span
SAMPLE_SECONDS = 3.0
log = structlog.get_logger("cradle.observability")


class MetricsListenerSettings(BaseSettings):
    """Where `/metrics` and the readiness details are served (`<PREFIX>_METRICS_HOST`, `_PORT`).
    Port 0 takes a free port and logs it; a deployment sets a fixed one for Prometheus (compose: 9464).
    `_FD`: a listening socket the parent process bound and handed down (`cradle up`), used instead."""

    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_fd: int | None = Field(default=None, ge=0)


class Metrics:
    """One prometheus registry per app, so several apps in one test process never collide."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cradle_http_requests_total",
            "HTTP requests",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cradle_http_request_seconds",
            "HTTP request latency",
            ["service", "method", "route"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.events_published = Counter(
            "cradle_events_published_total",
            "Outbox events acknowledged by JetStream",
            ["service"],
            registry=self.registry,
        )
        self.events_handled = Counter(
            "cradle_events_handled_total",
            "Events consumed, by outcome (handled, duplicate, retried, dead_lettered)",
            ["service", "consumer", "outcome"],
            registry=self.registry,
        )
        # Per process: a dead letter stays visible after a restart through /readyz and `cradle dlq`.
        self.dead_letters = Counter(
            "cradle_dead_letters_total",
            "Events this process's consumers parked on the dead-letter stream",
            ["service", "consumer"],
            registry=self.registry,
        )
        # What a pager needs, refreshed by the samplers before each scrape.
        self.outbox_backlog = Gauge(
            "cradle_outbox_backlog",
            "Outbox rows not yet acknowledged by JetStream",
            ["service"],
            registry=self.registry,
        )
        self.outbox_oldest_age = Gauge(
            "cradle_outbox_oldest_age_seconds",
            "Age of the oldest outbox row not yet acknowledged (0 when none waits)",
            ["service"],
            registry=self.registry,
        )
        self.consumer_pending = Gauge(
            "cradle_consumer_pending_messages",
            "Messages on the stream this durable consumer has not yet been delivered (JetStream num_pending)",
            ["service", "stream", "consumer"],
            registry=self.registry,
        )
        self.consumer_ack_pending = Gauge(
            "cradle_consumer_ack_pending_messages",
            "Messages delivered to this durable consumer and not yet acknowledged",
            ["service", "stream", "consumer"],
            registry=self.registry,
        )
        self.dead_letters_waiting = Gauge(
            "cradle_dead_letters_waiting",
            "Dead letters of this service's consumers waiting for `cradle dlq replay`",
            ["service", "consumer"],
            registry=self.registry,
        )
        self.sample_failures = Counter(
            "cradle_metrics_sample_failures_total",
            "Samplers that could not refresh their gauges at a scrape (database or NATS away)",
            ["service", "sampler"],
            registry=self.registry,
        )
        # The process's CPU, memory, file descriptors, Python version and garbage collector.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self.samplers: dict[str, Sampler] = {}
        self.service = service

    async def exposition(self) -> bytes:
        """The registry in Prometheus text, after every sampler had its chance (bounded: a database
        or broker that does not answer leaves its gauges as they were, and counts the failure)."""
        if self.samplers:
            names = list(self.samplers)
            results = await asyncio.gather(
                *(within(SAMPLE_SECONDS, self.samplers[name]()) for name in names),
                return_exceptions=True,
            )
            for name, result in zip(names, results, strict=True):
                if isinstance(result, BaseException):
                    self.sample_failures.labels(self.service, name).inc()
                    log.debug(
                        "metrics_sample_failed",
                        sampler=name,
                        error=f"{type(result).__name__}: {result}"[:200],
                    )
        return generate_latest(self.registry)


def new_request_id(candidate: str | None) -> str:
    if candidate and _REQUEST_ID_OK.match(candidate):
        return candidate
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Accepts or creates `X-Request-Id`, binds it to every log line, returns it, and counts the
    request. Pure ASGI: BaseHTTPMiddleware costs too much on every call."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = structlog.get_logger("cradle.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw = headers.get(b"x-request-id")
        request_id = new_request_id(raw.decode("latin-1") if raw else None)
        scope.setdefault("state", {})["request_id"] = request_id
        method = scope["method"]
        # The caller's (the gateway's) trace goes on here; probes start none.
        span = token = None
        if scope["path"] not in QUIET_PATHS:
            span, token = tracing.start_server_span(
                f"{self.metrics.service} {method}",
                tracing.context_from(headers.get(b"traceparent"), headers.get(b"tracestate")),
                {"cradle.service": self.metrics.service, "cradle.request_id": request_id},
            )
        structlog.contextvars.bind_contextvars(
            request_id=request_id, trace_id=tracing.trace_id_of(span) if span is not None else None
        )
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *[(k, v) for k, v in message["headers"] if k.lower() != b"x-request-id"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(self.metrics.service, method, template, str(status)).inc()
            self.metrics.latency.labels(self.metrics.service, method, template).observe(elapsed)
            if span is not None:
                span.set_attribute("http.route", template)
                tracing.end_server_span(
                    span, token, name=f"{self.metrics.service} {method} {template}", status=status
                )
            if template not in QUIET_PATHS:
                self.log.info(
                    "request", method=method, path=scope["path"], status=status, ms=round(elapsed * 1000, 1)
                )
            structlog.contextvars.unbind_contextvars("request_id", "trace_id")


class Readiness:
    """One readiness shape for every process and every reason:
    `{"status": "ready" | "degraded" | "unready", "service", "reasons": ["<check>: <why>", …],
    "checks": {<check>: "ok" | <why>}}`. `unready` checks failing make it 503 (the process cannot
    do its job: its database); `degraded` ones leave it serving, 200, but say what needs an operator
    (NATS away while the outbox holds events, dead letters waiting, a service behind the gateway down)."""

    def __init__(
        self, service: str, *, unready: dict[str, ReadinessCheck], degraded: dict[str, ReadinessCheck]
    ) -> None:
        self.service = service
        self.unready = unready
        self.degraded = degraded

    async def report(self) -> tuple[int, dict[str, Any]]:
        names = [*self.unready, *self.degraded]
        checks = [*self.unready.values(), *self.degraded.values()]
        found = await asyncio.gather(*(_run_check(check) for check in checks))
        results = dict(zip(names, found, strict=True))
        failing = [name for name in self.unready if results[name]]
        reasons = [f"{name}: {results[name]}" for name in names if results[name]]
        status = "unready" if failing else "degraded" if reasons else "ready"
        body = {
            "status": status,
            "service": self.service,
            "reasons": reasons,
            "checks": {name: results[name] or "ok" for name in names},
        }
        return (503 if failing else 200), body

    async def response(self, *, detailed: bool) -> JSONResponse:
        """Public: the status alone. The metrics listener: everything."""
        code, body = await self.report()
        headers = {"Retry-After": "5"} if code == 503 else None
        return JSONResponse(
            body if detailed else {"status": body["status"]}, status_code=code, headers=headers
        )


async def _run_check(check: ReadinessCheck) -> str | None:
    try:
        return await within(CHECK_SECONDS, check())
    except TimeoutError:
        return f"no answer within {CHECK_SECONDS:g} s"
    except Exception as exc:  # a readiness probe reports, it never raises
        return f"{type(exc).__name__}: {exc}"[:200]


def health_router(service: str, readiness: Readiness) -> APIRouter:
    """The public port's `/healthz` and bare `/readyz`."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get("/readyz")
    async def readyz() -> Response:
        return await readiness.response(detailed=False)

    return router


class MetricsListener:
    """`/metrics`, `/readyz` with its reasons and `/healthz` on a port of their own, served by
    uvicorn on the process's own event loop (so the checks and samplers await like any request).
    Only `startup`, `main_loop` and `shutdown` of uvicorn's server are used: `serve` would take
    over the process's signal handlers from the main server."""

    def __init__(
        self, *, metrics: Metrics, readiness: Readiness, host: str, port: int, fd: int | None = None
    ) -> None:
        self.metrics = metrics
        self.fd = fd
        self.readiness = readiness
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.Task[None] | None = None

        async def metrics_page(request: Any) -> Response:
            return Response(await metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

        async def readyz(request: Any) -> Response:
            return await readiness.response(detailed=True)

        async def healthz(request: Any) -> Response:
            return JSONResponse({"status": "ok", "service": metrics.service})

        self.app = Starlette(
            routes=[
                Route("/metrics", metrics_page),
                Route("/readyz", readyz),
                Route("/healthz", healthz),
            ]
        )

    @classmethod
    async def started(
        cls, *, metrics: Metrics, readiness: Readiness, settings: MetricsListenerSettings
    ) -> MetricsListener:
        """A process's listener, where its settings say, already serving."""
        listener = cls(
            metrics=metrics,
            readiness=readiness,
            host=settings.metrics_host,
            port=settings.metrics_port,
            fd=settings.metrics_fd,
        )
        await listener.start()
        return listener

    @property
    def url(self) -> str:
        assert self.port is not None, "the listener has not started"
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        sock = socket.socket(fileno=self.fd) if self.fd is not None else self._bind()
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, lifespan="off", log_config=None, access_log=False)
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self._server = server
        self._loop = asyncio.create_task(server.main_loop(), name="metrics-listener")
        log.info("metrics_listening", url=self.url)

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError as exc:
            sock.close()
            raise OSError(
                f"the metrics listener cannot bind {self.host}:{self.requested_port} ({exc.strerror}); "
                f"set <PREFIX>_METRICS_PORT to a free port (0: any)"
            ) from None
        sock.set_inheritable(True)
        return sock

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        if self._loop is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({self._loop}, timeout=2)
        self._server.force_exit = True  # scrapes in flight are not waited for
        await settle("metrics listener", self._server.shutdown(), seconds=5)
        self._server = None


def install_observability(app: FastAPI, metrics: Metrics) -> None:
    app.add_middleware(RequestContextMiddleware, metrics=metrics)


def request_id_of(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex
