"""Request ids, access metrics, and the /healthz /readyz /metrics endpoints every process serves."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import problem_response

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

ReadinessCheck = Callable[[], Awaitable[str | None]]  # returns None when ready, else the reason


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
        self.service = service


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
        structlog.contextvars.bind_contextvars(request_id=request_id)
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
            method = scope["method"]
            self.metrics.requests.labels(self.metrics.service, method, template, str(status)).inc()
            self.metrics.latency.labels(self.metrics.service, method, template).observe(elapsed)
            if template not in ("/healthz", "/readyz", "/metrics"):
                self.log.info(
                    "request", method=method, path=scope["path"], status=status, ms=round(elapsed * 1000, 1)
                )
            structlog.contextvars.unbind_contextvars("request_id")


def health_router(
    metrics: Metrics, checks: dict[str, ReadinessCheck], degraded: dict[str, ReadinessCheck] | None = None
) -> APIRouter:
    """`checks` failing make the process unready (503); `degraded` ones leave it serving (200) but
    say what needs an operator, e.g. dead letters waiting for a replay."""
    router = APIRouter(include_in_schema=False)
    warnings = degraded or {}

    async def run(group: dict[str, ReadinessCheck]) -> dict[str, str]:
        found: dict[str, str] = {}
        for name, check in group.items():
            try:
                reason = await check()
            except Exception as exc:  # a readiness probe reports, it never raises
                reason = f"{type(exc).__name__}: {exc}"[:200]
            if reason:
                found[name] = reason
        return found

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": metrics.service}

    @router.get("/readyz")
    async def readyz() -> Response:
        failures = await run(checks)
        if failures:
            return problem_response(
                status=503,
                title="Not ready",
                type_="/problems/unavailable",
                detail="; ".join(f"{k}: {v}" for k, v in failures.items()),
                headers={"Retry-After": "5"},
                extra={"checks": {k: failures.get(k, "ok") for k in checks}},
            )
        concerns = await run(warnings)
        body: dict[str, object] = {
            "status": "degraded" if concerns else "ready",
            "checks": {k: concerns.get(k, "ok") for k in (*checks, *warnings)},
        }
        if concerns:
            body["reason"] = "; ".join(f"{k}: {v}" for k, v in concerns.items())
        return Response(content=json.dumps(body, ensure_ascii=False), media_type="application/json")

    @router.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def install_observability(app: FastAPI, metrics: Metrics) -> None:
    app.add_middleware(RequestContextMiddleware, metrics=metrics)


def request_id_of(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex
