"""Deprecated paths and fields of `/v1`, each declared once — in `DEPRECATED` below (or, for a
deployment, `GATEWAY_DEPRECATIONS`) — and from that one declaration:

- every answer on the path carries `Deprecation: @<epoch>` (RFC 9745, the moment it was deprecated),
  `Sunset: <HTTP-date>` (RFC 8594, when it may stop answering) and `Link: <…>; rel="deprecation"`
  (where the change and its replacement are explained), whatever the status;
- the OpenAPI document marks the operation, or the schema's field, `deprecated: true`;
- after its sunset a deprecated path answers `410 Gone` (problem+json, the same headers), before
  anything else (no token check, no audit record: it does nothing).

docs/API-CHANGES.md says what may be deprecated, for how long, and lists each declaration."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import problem_response
from shared.i18n import accept_language, language_headers, negotiate, tr, use_locale

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
Header = tuple[bytes, bytes]
JSON = dict[str, Any]


class Deprecated(BaseModel):
    """A path (every method, or those named) or a field of one of its schemas."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str  # as the OpenAPI document names it, e.g. /v1/facilities/{facility_id}
    methods: tuple[Method, ...] = ()  # none: every method of the path
    schema_name: str | None = None  # with `field`: only this field is deprecated, the path stays
    field: str | None = None
    since: AwareDatetime
    sunset: AwareDatetime
    link: str  # the change's entry in the published API-CHANGES

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.path.startswith("/v1/"):
            raise ValueError("path: only /v1 paths are versioned (and deprecated)")
        if (self.schema_name is None) != (self.field is None):
            raise ValueError("schema_name and field: both or neither")
        if self.sunset <= self.since:
            raise ValueError("sunset: must be after since")
        return self

    def headers(self) -> list[Header]:
        return [
            (b"deprecation", f"@{int(self.since.timestamp())}".encode()),
            (b"sunset", format_datetime(self.sunset.astimezone(UTC), usegmt=True).encode()),
            (b"link", f'<{self.link}>; rel="deprecation"; type="text/html"'.encode()),
        ]


# Nothing in /v1 is deprecated yet. A declaration here is the whole of a deprecation (headers and
# OpenAPI); add its entry to docs/API-CHANGES.md in the same change.
DEPRECATED: tuple[Deprecated, ...] = ()


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^/{}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


class Deprecations:
    def __init__(self, declared: list[Deprecated] | tuple[Deprecated, ...]) -> None:
        self.declared = tuple(declared)
        self._compiled = [(_pattern(d.path), d) for d in self.declared]

    def headers(self, method: str, path: str) -> list[Header]:
        """What an answer to `method path` carries: the earliest deprecation and sunset of what
        applies, and a link to each."""
        matched = [
            d
            for pattern, d in self._compiled
            if pattern.match(path) and (not d.methods or method in d.methods)
        ]
        if not matched:
            return []
        since = min(matched, key=lambda d: d.since).headers()[0]
        sunset = min(matched, key=lambda d: d.sunset).headers()[1]
        return [since, sunset, *(d.headers()[2] for d in matched)]

    def retired(self, method: str, path: str, now: datetime) -> Deprecated | None:
        """The declaration of this path (not of a field) whose sunset has passed, if any: after its
        sunset a path answers 410 Gone, naming where to go instead."""
        for pattern, d in self._compiled:
            if d.field is None and d.sunset <= now and pattern.match(path):
                if not d.methods or method in d.methods:
                    return d
        return None

    def mark(self, document: JSON) -> JSON:
        """The OpenAPI document with each declared operation or schema field `deprecated: true`."""
        if not self.declared:
            return document
        marked = copy.deepcopy(document)
        schemas: JSON = marked.get("components", {}).get("schemas", {})
        for d in self.declared:
            if d.field is not None:
                schema = schemas.get(d.schema_name or "", {})
                field = schema.get("properties", {}).get(d.field)
                if isinstance(field, dict):
                    field["deprecated"] = True
                continue
            for method, operation in marked.get("paths", {}).get(d.path, {}).items():
                if isinstance(operation, dict) and (not d.methods or method.upper() in d.methods):
                    operation["deprecated"] = True
        return marked


class DeprecationNotices:
    """Outermost in the gateway: every answer on a deprecated path, a refusal or an error included."""

    def __init__(self, app: ASGIApp, *, deprecations: Deprecations) -> None:
        self.app = app
        self.deprecations = deprecations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        notices = self.deprecations.headers(scope["method"], scope["path"]) if scope["type"] == "http" else []
        if not notices:
            await self.app(scope, receive, send)
            return
        retired = self.deprecations.retired(scope["method"], scope["path"], datetime.now(UTC))
        if retired is not None:
            # Before the front door: the caller is not known, the header alone chooses the language.
            tag = negotiate(accept_language(scope))
            with use_locale(tag):
                gone = problem_response(
                    status=410,
                    title="Gone",
                    type_="/problems/gone",
                    detail=tr(
                        "This path was retired at its sunset, {sunset}; see {link}.",
                        sunset=retired.sunset.isoformat(),
                        link=retired.link,
                    ),
                )
            gone.raw_headers.extend([*notices, *language_headers(tag)])
            await gone(scope, receive, send)
            return

        async def send_with_notices(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *notices]
            await send(message)

        await self.app(scope, receive, send_with_notices)
