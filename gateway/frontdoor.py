"""The gateway's front door, in plain ASGI: request id, caller, enabled check, rate limit, route and
scope check, forwarding, metrics and the audit record — with no FastAPI routing or dependency work
on forwarded paths. The gateway's own paths (tokens, clients, audit) go on to FastAPI with the
caller already known."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from prometheus_client import Counter, Gauge, Histogram
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.audit import AuditWriter, PendingRecord
from gateway.auth import Caller, ClientStatus, TokenCache
from gateway.config import GatewaySettings
from gateway.errors import (
    ClientDisconnected,
    InvalidClient,
    MethodNotAllowed,
    MissingScope,
    ReplyCut,
    TooManyRequests,
    UpstreamUnavailable,
)
from gateway.oauth import NO_STORE, TOKEN_PATH
from gateway.proxy import FILE_TYPES, Forwarder
from gateway.ratelimit import Decision, Limiter
from gateway.routes import RouteTable, is_own
from shared import tracing
from shared.errors import BadRequest, CradleError, NotFound, ServiceUnavailable, Unauthorized, error_response
from shared.i18n import CHINESE, ENGLISH, language_headers, negotiate, set_locale, tr, use_locale
from shared.identity import PUBLIC_IDENTITY, ClientKind, Identity
from shared.observability import Metrics, new_request_id

log = structlog.get_logger("cradle.gateway")
FORWARDED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
NOT_AUDITED_STATUS = 499  # the caller left before an answer
# The parents' app and the parents' own accounts are answered in Chinese unless they ask otherwise.
CHINESE_BY_DEFAULT = frozenset({ClientKind.parent, ClientKind.app})


class GatewayMetrics:
    """Requests by route, status and client kind; latency; upstream errors (on the app's registry)."""

    def __init__(self, metrics: Metrics) -> None:
        registry = metrics.registry
        self.requests = Counter(
            "cradle_gateway_requests_total",
            "Requests through the gateway",
            ["route", "method", "status", "client_kind"],
            registry=registry,
        )
        self.latency = Histogram(
            "cradle_gateway_request_seconds",
            "Time from the request's arrival to the end of its reply",
            ["route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.upstream_errors = Counter(
            "cradle_gateway_upstream_errors_total",
            "Calls to a service that failed (down, timeout, cut reply)",
            ["service", "reason"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "cradle_gateway_rate_limited_total",
            "Requests refused with 429",
            ["client_kind"],
            registry=registry,
        )
        self.audit_pending = Gauge(
            "cradle_gateway_audit_pending", "Audit records not yet written", registry=registry
        )
        self.audit_written = Gauge(
            "cradle_gateway_audit_written", "Audit records written since start", registry=registry
        )
        self._children: dict[tuple[str, str, int, str], Counter] = {}
        self._timers: dict[str, Histogram] = {}

    def observe(self, route: str, method: str, status: int, kind: str, seconds: float) -> None:
        key = (route, method, status, kind)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(route, method, str(status), kind)
        child.inc()
        timer = self._timers.get(route)
        if timer is None:
            timer = self._timers[route] = self.latency.labels(route)
        timer.observe(seconds)


@dataclass
class Runtime:
    """What the lifespan makes, whole, and the front door uses (`app.state.runtime`)."""

    settings: GatewaySettings
    routes: RouteTable
    metrics: GatewayMetrics
    tokens: TokenCache
    clients: ClientStatus
    limiter: Limiter
    forwarder: Forwarder
    audit: AuditWriter
    public_caller: Caller = field(init=False)

    def __post_init__(self) -> None:
        self.public_caller = Caller(identity=PUBLIC_IDENTITY, expires_at=float("inf"))


def _header_text(value: bytes, limit: int) -> str:
    return _storable(value.decode("utf-8", "replace"), limit)


def _storable(value: str, limit: int) -> str:
    """Text any database stores: no NUL (PostgreSQL refuses it), no lone surrogates."""
    if value.isascii() and "\x00" not in value:
        return value[:limit]
    return value.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode("utf-8")[:limit]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FrontDoor:
    def __init__(self, app: ASGIApp, *, state: State) -> None:
        self.app = app
        self.state = state

    @property
    def rt(self) -> Runtime:
        """Made by the lifespan, before the first request."""
        runtime: Runtime = self.state.runtime
        return runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with use_locale(ENGLISH):  # the caller's language once the caller is known (set_locale)
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = rid_raw = purpose = language = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-request-id":
                rid_raw = value
            elif name == b"x-purpose":
                purpose = value
            elif name == b"accept-language":
                language = value.decode("latin-1")
        request_id = new_request_id(rid_raw.decode("latin-1") if rid_raw else None)
        scope.setdefault("state", {})["request_id"] = request_id
        rid_header = (b"x-request-id", request_id.encode())
        path: str = scope["path"]
        if not path.startswith("/v1/"):  # health, metrics, documents: not callers' business calls
            tag = negotiate(language)
            set_locale(tag)
            await self.app(scope, receive, _with_headers(send, [rid_header, *language_headers(tag)], {}))
            return

        rt = self.rt
        started = time.perf_counter()
        at = datetime.now(UTC)
        method: str = scope["method"]
        exported: dict[str, str] = {}
        send = _noting_export(send, exported)
        # The gateway hop: a child of the caller's `traceparent` (or a new trace); the service's span,
        # the outbox's publish and every consumer's handling continue it.
        span, span_token = tracing.start_server_span(
            f"gateway {method}",
            tracing.context_from_headers(scope["headers"]),
            {"cradle.service": "gateway", "cradle.request_id": request_id},
        )
        # Every line logged for this request (the composite views' fan-out included) names it.
        bound = structlog.contextvars.bind_contextvars(
            request_id=request_id, trace_id=tracing.trace_id_of(span)
        )
        caller = rt.public_caller
        extra: list[tuple[bytes, bytes]] = [rid_header]
        outcome = {"status": 500}
        route_label = "unmatched"
        try:
            denial: CradleError | None = None
            if path == TOKEN_PATH:
                # The token endpoint authenticates the client itself (HTTP Basic or the form), and
                # nothing it answers, a refusal included, may be stored by a cache.
                extra.extend(NO_STORE)
            elif authorization is not None:
                try:
                    caller = self._authenticate(authorization)
                except Unauthorized as exc:
                    denial = exc
            identity = caller.identity
            tag = negotiate(language, default=CHINESE if identity.kind in CHINESE_BY_DEFAULT else ENGLISH)
            set_locale(tag)
            extra.extend(language_headers(tag))
            if denial is None and caller is not rt.public_caller:
                if not await rt.clients.enabled(identity.client_id):
                    denial = InvalidClient("This client is disabled or no longer exists.")
            decision, policy = await self._rate_limit(scope, caller, denial)
            extra.extend(decision.headers(policy))
            if not decision.allowed:
                rt.metrics.rate_limited.labels(identity.kind.value).inc()
                raise TooManyRequests(
                    tr(
                        "Over this client's limit of {limit} requests; retry in {seconds} s.",
                        limit=decision.limit,
                        seconds=decision.retry_after,
                    )
                )
            if denial is not None:
                raise denial
            if rt.audit.overloaded:
                raise ServiceUnavailable("The audit log cannot keep up; retry shortly.", retry_after=5)

            if _CONTROL.search(path):
                raise BadRequest("The path holds control characters.")
            if is_own(path):
                scope["state"]["caller"] = identity
                await self.app(scope, receive, _with_headers(send, extra, outcome))
                own = scope.get("route")
                route_label = getattr(own, "path", None) or "unmatched"
                return

            route = rt.routes.match(path)
            if route is None:
                raise NotFound(tr("No such path: {path}", path=path))
            route_label = route.name
            if method not in FORWARDED_METHODS:
                raise MethodNotAllowed(tr("{method} is not forwarded.", method=method))
            if caller is rt.public_caller:
                if method not in route.public_methods:
                    raise Unauthorized("This path needs a token from POST /v1/auth/token.")
            elif route.scopes and not any(identity.has_scope(s) for s in route.scopes):
                scopes = ", ".join(sorted(route.scopes))
                raise MissingScope(tr("This path needs one of the scopes: {scopes}.", scopes=scopes))
            # The service answers in the language negotiated here (a parent's default included).
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"accept-language"]
            scope["headers"].append((b"accept-language", tag.encode()))
            outcome["status"] = await rt.forwarder.forward(
                scope,
                receive,
                send,
                service=route.service,
                identity_token=rt.tokens.signed_identity(caller),
                request_id=request_id,
                extra_headers=extra,
            )
        except CradleError as exc:
            if isinstance(exc, UpstreamUnavailable):
                rt.metrics.upstream_errors.labels(exc.service, exc.reason).inc()
                log.warning("upstream_unavailable", service=exc.service, reason=exc.reason, path=path)
            outcome["status"] = exc.status
            response = error_response(exc)
            response.raw_headers.extend(extra)
            await response(scope, receive, send)
        except ClientDisconnected:
            outcome["status"] = NOT_AUDITED_STATUS
        except ReplyCut as exc:
            rt.metrics.upstream_errors.labels(exc.service, "reply_cut").inc()
            log.warning("upstream_reply_cut", service=exc.service, path=path)
            outcome["status"] = exc.status
        finally:
            elapsed = time.perf_counter() - started
            status = outcome["status"]
            tracing.end_server_span(span, span_token, name=f"gateway {method} {route_label}", status=status)
            identity = caller.identity
            rt.metrics.observe(route_label, method, status, identity.kind.value, elapsed)
            # An anonymous sign-in is recorded under the client id it tried (set by the route).
            client_id = identity.client_id
            if caller is rt.public_caller:
                client_id = scope["state"].get("audit_client_id") or client_id
            rt.audit.add(
                PendingRecord(
                    at=at,
                    client_id=client_id,
                    client_kind=identity.kind.value,
                    bureau=identity.bureau,
                    method=method[:10],
                    path=_storable(path, 1024),
                    status=status,
                    request_id=request_id,
                    purpose=_header_text(purpose, 500) if purpose else None,
                    duration_us=int(elapsed * 1_000_000),
                    export=exported.get("media_type") if status < 400 else None,
                )
            )
            structlog.contextvars.reset_contextvars(**bound)

    def _authenticate(self, authorization: bytes) -> Caller:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Use `Authorization: Bearer <token>` with a token from POST /v1/auth/token.")
        return self.rt.tokens.caller(token)

    async def _rate_limit(
        self, scope: Scope, caller: Caller, denial: CradleError | None
    ) -> tuple[Decision, str]:
        """The decision and the name of the policy it applied (the caller's kind, or `public`)."""
        rt = self.rt
        if caller is rt.public_caller or denial is not None:
            client = scope.get("client")
            key, kind = f"ip:{client[0] if client else 'unknown'}", "public"
        else:
            key, kind = f"client:{caller.identity.client_id}", caller.identity.kind.value
        policy = kind if kind in rt.settings.rate_limits else "public"
        return await rt.limiter.take(key, rt.settings.rate_limits[policy]), policy


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]], outcome: dict[str, int]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            outcome["status"] = message["status"]
            names = {name for name, _ in extra}
            message["headers"] = [
                *[(k, v) for k, v in message.get("headers", []) if k.lower() not in names],
                *extra,
            ]
        await send(message)

    return wrapped


def _noting_export(send: Send, exported: dict[str, str]) -> Send:
    """Notes a reply that is a list as a file (its media type), for the audit record."""

    async def noting(message: Message) -> None:
        if message["type"] == "http.response.start":
            for name, value in message.get("headers", []):
                if name.lower() == b"content-type":
                    media_type = value.split(b";")[0].strip().lower()
                    if media_type in FILE_TYPES:
                        exported["media_type"] = media_type.decode()
        await send(message)

    return noting


def caller_of(scope: Scope) -> Identity:
    return scope.get("state", {}).get("caller") or PUBLIC_IDENTITY
