"""`POST /v1/ban-checks`, the workforce's hottest request, answered before FastAPI's routing.

A pure ASGI layer, innermost of the app's middleware (request ids, metrics, limits and the key
check still apply). It answers a plain check itself: a JSON body of exactly `{"id_number": …}` with
a valid number, a valid gateway identity holding `workforce:read`, an `X-Purpose` within bounds.
It calls the same `check_ban` as the route, so the answer still waits for its audit row's commit,
and an error there is rendered by the app's own handlers (a database away is a 503, never "not
banned"). Anything else — a refused caller, an invalid number, a malformed body — goes on to the
route with the body as received, which audits and answers it as it always has.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.workforce.service.ban_checks import CHECK_SCOPE, check_ban
from shared.errors import CradleError
from shared.identity import IDENTITY_HEADER, ClientKind, Identity, purpose
from shared.pii import NationalIdError, validate_national_id

PATH = "/v1/ban-checks"
MAX_ID_NUMBER = 64  # the route's RawIdNumber
MAX_PURPOSE = 600  # the route's X-Purpose header


class DirectBanCheck:
    def __init__(self, app: ASGIApp, *, route: APIRoute) -> None:
        self.app = app
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        messages, body = await _read(receive)
        replay = _replaying(messages, receive)
        plain = self._plain(scope, body)
        if plain is None:
            await self.app(scope, replay, send)
            return
        caller, id_number, raw_purpose = plain
        why = await purpose(raw_purpose.decode("latin-1")) if raw_purpose is not None else None
        state = scope["app"].state
        scope.setdefault("state", {})["caller"] = caller
        scope["route"] = self.route
        try:
            result = await check_ban(
                trips=state.ban_trips,
                audit=state.check_audit,
                workforce=state.workforce,
                caller=caller,
                id_number=id_number,
                purpose=why,
                request_id=scope["state"].get("request_id"),
            )
        except Exception as exc:  # rendered as the route's would be: the app's handlers
            handler = next(
                (h for t in type(exc).__mro__ if (h := scope["app"].exception_handlers.get(t)) is not None),
                None,
            )
            if handler is None:
                raise
            response = await handler(Request(scope, replay), exc)
            await response(scope, replay, send)
            return
        payload = result.model_dump_json().encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(payload)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _plain(self, scope: Scope, body: bytes) -> tuple[Identity, str, bytes | None] | None:
        headers = dict(scope["headers"])
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            return None
        token = headers.get(IDENTITY_HEADER.encode())
        raw_purpose = headers.get(b"x-purpose")
        if token is None or (raw_purpose is not None and len(raw_purpose) > MAX_PURPOSE):
            return None
        try:
            caller = scope["app"].state.identity_verifier.verify(token.decode("latin-1"))
            parsed: Any = orjson.loads(body)
        except (CradleError, orjson.JSONDecodeError):
            return None
        if caller.kind == ClientKind.public or not caller.has_scope(CHECK_SCOPE):
            return None
        if not isinstance(parsed, dict) or parsed.keys() != {"id_number"}:
            return None
        id_number = parsed["id_number"]
        if not isinstance(id_number, str) or len(id_number) > MAX_ID_NUMBER:
            return None
        try:
            validate_national_id(id_number)
        except NationalIdError:
            return None
        return caller, id_number, raw_purpose


async def _read(receive: Receive) -> tuple[list[Message], bytes]:
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    return messages, b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives the messages already read, then the real one's."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
