"""Limits on request bodies, enforced before anything parses them: a body larger than the limit is
a 413, a JSON body nested deeper than the limit a 422. Python's and pydantic's parsers, orjson's
encoder and the log renderers all recurse; a hostile body nested a few hundred deep must be refused
here, cheaply, instead of failing (or stalling the process) somewhere inside them."""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import FieldError, problem_response
from shared.i18n import tr

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_JSON_DEPTH = 32
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# A JSON string, escapes included (the unrolled loop: linear, no backtracking).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Everything but the brackets, deleted by bytes.translate (C speed).
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """True when the body's arrays and objects nest deeper than `limit`. Brackets inside strings do
    not count; malformed JSON is left to the parser (this only measures)."""
    if b"\\" in body:  # escapes: a quote may be inside a string
        outside = _STRING.sub(b"", body)
    else:  # no escape, so every quote opens or closes a string: what lies between pairs is outside
        outside = b"".join(body.split(b'"')[::2])
    brackets = outside.translate(None, _NOT_BRACKETS)
    return len(brackets) > limit and _deeper(brackets, limit)


# An escaped UTF-16 surrogate (`\\ud800`): half of a pair, or — alone — not text at all. Python's
# parser hands a lone one back as a str that no UTF-8 encoder (pydantic-core's, the database
# driver's) can write, deep inside validation: refused here as malformed JSON instead.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def lone_surrogate(body: bytes) -> str | None:
    """The first lone surrogate in the body's strings or keys, as `U+D800`, or None. Parses only
    bodies that escape a surrogate at all (rare: a pair is an emoji written ASCII-only)."""
    if not _SURROGATE_ESCAPE.search(body):
        return None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None  # malformed: the route's parser says so
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            found = _LONE.search(item)
            if found:
                return f"U+{ord(found.group()):04X}"
    return None


_LONE = re.compile("[\ud800-\udfff]")


def _deeper(brackets: bytes, limit: int) -> bool:
    depth = 0
    for byte in brackets:
        if byte in _OPEN:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


FORM_TYPES = (b"multipart/", b"application/x-www-form-urlencoded")


def may_be_json(scope: Scope) -> bool:
    """Anything but a form: FastAPI parses a body without a content type as JSON, and some routes
    parse their body whatever its declared type."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return not value.strip().lower().startswith(FORM_TYPES)
    return True


def declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyTooLarge(Exception):
    pass


class JsonLimits:
    """Pure ASGI. Bodies of POST/PUT/PATCH/DELETE are read whole (up to `max_body_bytes`, else 413)
    and, unless a form, measured (JSON deeper than `max_depth` is a 422); then handed on unchanged."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_depth: int = DEFAULT_MAX_JSON_DEPTH,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        try:
            body, disconnected = await self._read(receive)
        except BodyTooLarge:
            await self._too_large(scope, receive, send)
            return
        if may_be_json(scope) and json_depth_exceeds(body, self.max_depth):
            message = tr("nests arrays and objects deeper than {max_depth} levels", max_depth=self.max_depth)
            response = problem_response(
                status=422,
                title="Invalid input",
                type_="/problems/too-deep",
                detail=tr("The JSON body {message}.", message=message),
                errors=[FieldError(field="body", message=message)],
                extra={"max_depth": self.max_depth},
            )
            await response(scope, receive, send)
            return
        surrogate = lone_surrogate(body) if may_be_json(scope) else None
        if surrogate is not None:
            response = problem_response(
                status=400,
                title="Malformed JSON",
                type_="/problems/malformed-json",
                detail=tr(
                    "The body holds a lone surrogate ({surrogate}): not text in any encoding.",
                    surrogate=surrogate,
                ),
                errors=[FieldError(field="body", message=tr("holds a lone surrogate ({s})", s=surrogate))],
            )
            await response(scope, receive, send)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            if disconnected:
                return {"type": "http.disconnect"}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks), True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            status=413,
            title="Payload too large",
            type_="/problems/too-large",
            detail=tr("The body is larger than {limit} bytes.", limit=self.max_body_bytes),
            extra={"max_body_bytes": self.max_body_bytes},
            # The rest of the body is not read: the connection cannot be reused for another request.
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
