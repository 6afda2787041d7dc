"""One OpenAPI document for the whole API: the gateway's own merged with each service's, fetched
from the service's `/openapi.json` and cached; a service that is down is left out and asked again
on the next request after `retry_seconds`. The same merge, run on every service's document at
release time (`python -m cradle.openapi`), is the committed docs/openapi.json."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from functools import cache
from typing import Any

import httpx
import structlog
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway.devices import router as devices_router
from gateway.oauth import OAUTH_ERROR_SCHEMA, TOKEN_PATH, TOKEN_REQUEST_SCHEMA
from gateway.oauth import router as oauth_router
from gateway.router import router
from gateway.upstream import UpstreamClient
from shared.bounded import stop_task
from shared.operation_ids import operation_id

log = structlog.get_logger("cradle.gateway.openapi")
JSON = dict[str, Any]
TITLE = "Cradle API"
VERSION = "0.1.0"
DESCRIPTION = (
    "Every Cradle service behind one gateway. Tokens: POST /v1/auth/token (OAuth 2.0 client "
    "credentials). Conventions, errors, pagination, idempotency and rate limits: docs/API.md."
)
OWN_ROUTERS = (oauth_router, router, devices_router)
OPERATIONAL = ("/healthz", "/readyz", "/metrics")
PROBLEM_JSON = "application/problem+json"
# RFC 9457, as shared/errors.py renders every error; extension members (e.g. `current_version`) may follow.
PROBLEM_SCHEMA: JSON = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
# The errors any path may answer (docs/API.md, Errors): the gateway's own (token, scope, unknown
# path, rate limit, a service down) and the services' (bad input, an object you may not see).
PROBLEMS = {
    "400": "Bad request (malformed JSON, a path or header that cannot be read)",
    "401": "No token, or an invalid or expired one",
    "403": "Not allowed (the token lacks the scope this needs)",
    "404": "No such object that you may see",
    "422": "Invalid input: every wrong field is named in `errors`",
    "429": "Over the client's rate limit; see Retry-After",
    "503": "A service or dependency is unavailable; see Retry-After",
}
CHANGE_PROBLEMS = {"409": "Conflicts with the current state of the resource"}
BODY_PROBLEMS = {"413": "The body is too large"}
VERSION_PROBLEMS = {"412": "If-Match names an older version: reload and apply the change again"}
# The token endpoint's own refusals are OAuth's (gateway/oauth.py); only these are HTTP's there.
TOKEN_PROBLEMS = ("413", "429", "503")
# FastAPI's 422 body, replaced everywhere by Problem: left out of the document once unused.
FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")

# The current IETF draft's fields (draft-ietf-httpapi-ratelimit-headers), as gateway/ratelimit.py
# sends them on every /v1 reply; Retry-After on a 429 or 503.
RATE_LIMIT_HEADERS: JSON = {
    "RateLimit-Policy": {
        "description": 'The caller\'s quota policy: `"<kind>";q=<requests>;w=<seconds>` (a bucket of q '
        "requests that refills completely in w seconds; kind is the client's kind, or `public`).",
        "schema": {"type": "string", "examples": ['"operator";q=120;w=60']},
    },
    "RateLimit": {
        "description": 'What is left of it: `"<kind>";r=<remaining>;t=<seconds until full>`.',
        "schema": {"type": "string", "examples": ['"operator";r=119;t=1']},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    },
}

# Every tag's description, in the order the document lists them. A route with a tag not here fails
# tests/test_openapi_document.py: add its description.
TAGS: dict[str, str] = {
    "auth": "Tokens: OAuth 2.0 client credentials for systems (HTTP Basic or the form), a phone and "
    "password for parents; the authorization server's metadata (RFC 8414).",
    "admin": "The API's clients (bureaus, districts, operators, apps): registration, secrets, "
    "disabling. Scope `admin`.",
    "audit": "The gateway's tamper-evident record of every call. Scope `audit:read`.",
    "views": "Composed by the gateway from several services: a facility's profile, the plan's indicators.",
    "device credentials": "NATS credentials for a facility's video system, to publish CCTV events to "
    "the bus directly.",
    "divisions": "Shanghai's districts and towns (public).",
    "facilities": "The registry of childcare facilities: applications, records, versions, enrolment.",
    "applications": "Departments' reviews of a facility's application, and its status changes.",
    "quality": "Quality assessments by dimension of the versioned quality framework (WS/T 821—2023), "
    "demonstration facilities.",
    "health": "卫生保健: children's entry health checks (入托体检) reported monthly by operators, HEALTH's "
    "yearly assessment of each facility, HEALTH's figures per district.",
    "credit": "A facility's credit record and inspection history.",
    "coverage": "Inclusive childcare points per district and town against the plan.",
    "imports": "Spreadsheets in (XLSX or CSV): a facility's staff roster (operators), facilities licensed "
    "before Cradle (EDU); dry run first, a verdict per row.",
    "public": "What anyone may read about licensed facilities (operating, suspended or closed), without "
    "a token.",
    "fees": "Fee schedules (收费公示): versions, the public disclosure, the inclusive cap and the "
    "facilities flagged for fees above it.",
    "change requests": "Changes to a licensed facility's licensed facts (and fees above the inclusive "
    "cap), applied when the departments approve.",
    "subsidies": "综合奖补: FINANCE's rates per inclusive place, the districts' monthly lists (computed "
    "as the records stood at the month's close, reviewed by EDU, published and paid by FINANCE), their "
    "lines.",
    "workforce": "Practitioners, certificates, trainings and grades, background checks, employments, "
    "lifetime bans and ban checks, staffing and training compliance.",
    "cameras": "Cameras registered per facility.",
    "cctv": "CCTV events in batches from facilities' video systems.",
    "alerts": "Alerts raised from CCTV events: acknowledge, resolve, escalate.",
    "incidents": "Incidents, findings and their confirmation, which bans the people named.",
    "inspections": "Inspectors, random inspection plans, inspections, results and rectification.",
    "risk": "Facilities' risk scores with their reasons.",
    "complaints": "Complaints about a facility (投诉): lodged by parents, anyone without a token, or a "
    "bureau; acknowledged and answered by its district in working days; followed by reference and code.",
    "indicators": "The figures behind the plan's indicators.",
    "places": "Guidance stations and other places where families are served.",
    "families": "Families, their children, home visits and the resources fitting the children's ages.",
    "sessions": "Parenting guidance sessions, bookings and attendance.",
    "resources": "Guidance resources for families.",
    "figures": "Guidance figures per district and for the city.",
    "subscriptions": "Webhook subscriptions of bureaus' systems (Standard Webhooks) and their deliveries.",
    "events": "The events a client may read, a page at a time or as a stream.",
}


@cache
def gateway_document() -> JSON:
    """The gateway's own paths (tokens, clients, audit, views, device credentials)."""
    app = FastAPI(title=TITLE, version=VERSION, generate_unique_id_function=operation_id)
    for own in OWN_ROUTERS:
        app.include_router(own)
    return get_openapi(title=TITLE, version=VERSION, description=DESCRIPTION, routes=app.routes)


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/components/schemas/"):
                name = value.rsplit("/", 1)[1]
                out[key] = "#/components/schemas/" + renames.get(name, name)
            else:
                out[key] = _rename_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rename_refs(v, renames) for v in node]
    return node


def _collisions(own: JSON, services: dict[str, JSON]) -> dict[str, dict[str, str]]:
    """Per service, its schema names that another document defines differently, each renamed to
    `<Service><Name>` on every side that is a service's (the gateway's own names stand), so a
    name never depends on which document came first."""
    definitions: dict[str, list[tuple[str | None, Any]]] = {}
    for name, schema in own.get("components", {}).get("schemas", {}).items():
        definitions.setdefault(name, []).append((None, schema))
    for service, document in services.items():
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            definitions.setdefault(name, []).append((service, schema))
    renames: dict[str, dict[str, str]] = {service: {} for service in services}
    for name, defined in definitions.items():
        if any(schema != defined[0][1] for _, schema in defined[1:]):
            for service, _ in defined:
                if service is not None:
                    renames[service][name] = service.capitalize() + name
    return renames


def merge(own: JSON, services: dict[str, JSON]) -> JSON:
    """Paths and schemas of every service added to the gateway's document (renamed where two
    define one name differently), with the errors, rate-limit headers, tags and security every
    path shares."""
    merged = copy.deepcopy(own)
    paths: JSON = merged.setdefault("paths", {})
    schemas: JSON = merged.setdefault("components", {}).setdefault("schemas", {})
    renames = _collisions(own, services)
    used_tags: set[str] = set()
    for service, document in sorted(services.items()):
        document = _rename_refs(document, renames[service])
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            renamed = renames[service].get(name)
            if renamed is not None:
                schema["title"] = renamed  # generators name their models after the title
            schemas.setdefault(renamed or name, schema)
        for path, item in document.get("paths", {}).items():
            if path in OPERATIONAL:
                continue
            target = paths.setdefault(path, {})
            for method, operation in item.items():
                operation.setdefault("tags", [service])
                target.setdefault(method, operation)
    schemas.setdefault("Problem", copy.deepcopy(PROBLEM_SCHEMA))
    schemas.setdefault("OAuthError", copy.deepcopy(OAUTH_ERROR_SCHEMA))
    schemas.setdefault("TokenRequest", copy.deepcopy(TOKEN_REQUEST_SCHEMA))
    for path, item in paths.items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                _item_schemas_per_event(operation)
                _document_problems(path, method, operation)
                if path.startswith("/v1/"):
                    _document_rate_limits(operation)
                used_tags.update(operation.get("tags", []))
    text = json.dumps(paths)
    for name in FASTAPI_VALIDATION:
        if f'"#/components/schemas/{name}"' not in text:
            schemas.pop(name, None)
    merged["components"]["headers"] = copy.deepcopy(RATE_LIMIT_HEADERS)
    merged["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A token from POST /v1/auth/token",
        },
        "clientBasic": {
            "type": "http",
            "scheme": "basic",
            "description": "The client's id and secret, for POST /v1/auth/token only (RFC 6749 §2.3.1)",
        },
    }
    merged["security"] = [{"bearer": []}, {}]
    merged["tags"] = [
        {"name": name, "description": TAGS.get(name, "")}
        for name in [*TAGS, *sorted(used_tags - set(TAGS))]
        if name in used_tags
    ]
    return merged


def _item_schemas_per_event(operation: JSON) -> None:
    """OpenAPI 3.2's `itemSchema` (FastAPI gives a Server-Sent Events stream one) is not 3.1, which
    this document is. In 3.1 a `text/event-stream` schema describes each event (as clients and
    contract testers read it: an object of `data`, `event`, `id`, `retry`), so the item's schema
    becomes the media type's."""
    for response in operation["responses"].values():
        for media in response.get("content", {}).values():
            if "itemSchema" in media:
                media["schema"] = media.pop("itemSchema")


def _document_rate_limits(operation: JSON) -> None:
    for status, response in operation["responses"].items():
        if "$ref" in response:
            continue
        headers = response.setdefault("headers", {})
        for name in ("RateLimit-Policy", "RateLimit"):
            headers.setdefault(name, {"$ref": f"#/components/headers/{name}"})
        if status in ("429", "503"):
            headers.setdefault("Retry-After", {"$ref": "#/components/headers/Retry-After"})


def _document_problems(path: str, method: str, operation: JSON) -> None:
    """Errors are `application/problem+json` (shared/errors.py): FastAPI's own 422 (`{"detail"}`)
    and described-only error responses get the Problem body, and the errors every path may answer
    are added."""
    expected = dict(PROBLEMS)
    if method != "get":
        expected |= CHANGE_PROBLEMS
    if "requestBody" in operation:
        expected |= BODY_PROBLEMS
    if any(
        p.get("in") == "header" and p.get("name", "").lower() == "if-match"
        for p in operation.get("parameters", [])
    ):
        expected |= VERSION_PROBLEMS
    if path == TOKEN_PATH:
        expected = {status: expected[status] for status in TOKEN_PROBLEMS}
    responses: JSON = operation["responses"]
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for status, description in expected.items():
        responses.setdefault(status, {"description": description})
    for status, response in responses.items():
        if "$ref" in response:
            continue
        if status[:1] in ("4", "5") and (status == "422" or not response.get("content")):
            response["content"] = problem
            if status == "422":
                response["description"] = PROBLEMS["422"]


class ServiceDocuments:
    def __init__(self, client: UpstreamClient, upstreams: dict[str, str], *, retry_seconds: float) -> None:
        self.client = client
        self.upstreams = upstreams
        self.retry_seconds = retry_seconds
        self.documents: dict[str, JSON] = {}
        self._tried: dict[str, float] = {}
        # Fetches under way: a request for the document waits for them (bounded by their timeout)
        # instead of answering without a service whose first fetch, the warm-up's, has not ended.
        self._fetching: dict[str, asyncio.Task[None]] = {}

    async def _fetch(self, service: str, base: str) -> None:
        try:
            status, content = await self.client.get(f"{base}/openapi.json", timeout=3.0)
            if status != 200:
                raise ValueError(f"HTTP {status}")
            document = json.loads(content)
            if not isinstance(document, dict) or "paths" not in document:
                raise ValueError("not an OpenAPI document")
            self.documents[service] = document
        except (httpx.HTTPError, ValueError, json.JSONDecodeError) as exc:
            log.info("openapi_fetch_failed", service=service, error=f"{type(exc).__name__}: {exc}"[:200])

    async def refresh(self) -> dict[str, JSON]:
        """Fetch what is missing (or stale) and not tried within `retry_seconds`, and wait for every
        fetch under way (another request's, or the warm-up's)."""
        now = time.monotonic()
        for service, base in self.upstreams.items():
            if service not in self._fetching and now - self._tried.get(service, -1e9) >= self.retry_seconds:
                self._tried[service] = now
                task = asyncio.create_task(self._fetch(service, base), name=f"openapi-{service}")
                self._fetching[service] = task
                task.add_done_callback(lambda _, service=service: self._fetching.pop(service, None))
        if self._fetching:
            # Shielded: a request that goes away does not cancel a fetch others wait for.
            await asyncio.gather(*(asyncio.shield(task) for task in list(self._fetching.values())))
        return dict(self.documents)

    async def stop(self, *, seconds: float) -> None:
        """At shutdown: the fetches under way, cancelled (before the client they use is closed)."""
        for service, task in list(self._fetching.items()):
            await stop_task(f"openapi fetch ({service})", task, seconds=seconds)
