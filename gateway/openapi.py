"""One OpenAPI document for the whole API: the gateway's own merged with each service's, fetched
from the service's `/openapi.json` and cached; a service that is down is left out and asked again
on the next request after `retry_seconds`."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from typing import Any

import httpx
import structlog

from gateway.oauth import OAUTH_ERROR_SCHEMA
from gateway.upstream import UpstreamClient

log = structlog.get_logger("cradle.gateway.openapi")
JSON = dict[str, Any]
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
# The errors any path may answer (API.md, Conventions): the gateway's own (token, scope, unknown
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


def merge(own: JSON, services: dict[str, JSON]) -> JSON:
    """Paths and schemas of every service added to the gateway's document. A schema name two
    documents define differently is prefixed with its service's name (refs rewritten)."""
    merged = copy.deepcopy(own)
    paths: JSON = merged.setdefault("paths", {})
    schemas: JSON = merged.setdefault("components", {}).setdefault("schemas", {})
    tags = {t["name"] for t in merged.get("tags", [])}
    for service, document in sorted(services.items()):
        theirs: JSON = document.get("components", {}).get("schemas", {})
        renames = {
            name: f"{service}_{name}"
            for name, schema in theirs.items()
            if name in schemas and schemas[name] != schema
        }
        document = _rename_refs(document, renames)
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            schemas.setdefault(renames.get(name, name), schema)
        for path, item in document.get("paths", {}).items():
            if path in OPERATIONAL:
                continue
            target = paths.setdefault(path, {})
            for method, operation in item.items():
                operation.setdefault("tags", [service])
                target.setdefault(method, operation)
        for tag in document.get("tags", []):
            if tag.get("name") not in tags:
                merged.setdefault("tags", []).append(tag)
                tags.add(tag.get("name"))
    schemas.setdefault("Problem", copy.deepcopy(PROBLEM_SCHEMA))
    # The token endpoint's errors refer to it by name (gateway/oauth.py): a dangling reference
    # breaks ReDoc outright.
    schemas.setdefault("OAuthError", copy.deepcopy(OAUTH_ERROR_SCHEMA))
    for item in paths.values():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                _document_problems(method, operation)
    merged.setdefault("components", {})["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "POST /v1/auth/token",
        }
    }
    merged["security"] = [{"bearer": []}, {}]
    return merged


def _document_problems(method: str, operation: JSON) -> None:
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

    async def _fetch(self, service: str, base: str) -> None:
        self._tried[service] = time.monotonic()
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
        """Fetch what is missing (or stale) and not tried within `retry_seconds`."""
        now = time.monotonic()
        due = [
            (service, base)
            for service, base in self.upstreams.items()
            if now - self._tried.get(service, -1e9) >= self.retry_seconds
        ]
        if due:
            await asyncio.gather(*(self._fetch(service, base) for service, base in due))
        return dict(self.documents)
