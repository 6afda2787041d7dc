from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from services.guidance.models import Family, GuidanceSession
from services.guidance.service import sessions
from services.guidance.service.common import PARENT_SCOPE, READ_SCOPE, WRITE_SCOPE, Guidance, writes_guidance
from services.guidance.service.families import get_visible_family, open_code, seal_code
from shared.api import IdPath
from shared.errors import FieldError, Forbidden, InvalidInput
from shared.idempotency import Idempotency, IdempotentRoute
from shared.idempotency import idempotent as shared_idempotent
from shared.identity import AuthenticatedDep, Identity, resolve_caller
from shared.service import SessionDep

# Ids are UUIDs (docs/API.md); anything else is refused before it reaches a query.
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


async def guidance(request: Request) -> Guidance:
    return request.app.state.guidance


GuidanceDep = Annotated[Guidance, Depends(guidance)]


async def any_guidance_caller(caller: AuthenticatedDep) -> Identity:
    """Reading needs `guidance:read`, `guidance:write` or a parent's account; object checks follow."""
    if not any(caller.has_scope(s) for s in (READ_SCOPE, WRITE_SCOPE, PARENT_SCOPE)):
        raise Forbidden("This needs the `guidance:read` scope (or `guidance:write`, or a parent's account).")
    return caller


Caller = Annotated[Identity, Depends(any_guidance_caller)]


async def guidance_writer(caller: AuthenticatedDep) -> Identity:
    """Stations, sessions, visits and resources are written with `guidance:write`, never by a parent
    (checked before the body, so a refused caller learns nothing from validation)."""
    if not writes_guidance(caller):
        raise Forbidden("This needs the `guidance:write` scope.")
    return caller


Writer = Annotated[Identity, Depends(guidance_writer)]


async def visible_family(session: SessionDep, caller: Caller, family_id: IdPath) -> Family:
    """Load-and-authorize: the family if the caller may see it (a parent: its linked one), else 404."""
    return await get_visible_family(session=session, caller=caller, family_id=family_id)


async def family_to_change(session: SessionDep, caller: Caller, family_id: IdPath) -> Family:
    """The same, locked for the rest of the transaction on PostgreSQL, so edits queue."""
    return await get_visible_family(session=session, caller=caller, family_id=family_id, for_update=True)


FamilyDep = Annotated[Family, Depends(visible_family)]
FamilyToChangeDep = Annotated[Family, Depends(family_to_change)]


async def guidance_session(session: SessionDep, _caller: Caller, session_id: IdPath) -> GuidanceSession:
    return await sessions.get_session(session=session, session_id=session_id)


GuidanceSessionDep = Annotated[GuidanceSession, Depends(guidance_session)]


@dataclass
class GuidanceIdempotency(Idempotency):
    """shared/idempotency's record, with two changes for personal data: the request hash is keyed
    (HMAC), since a body holding a phone number or link code must not leave a plain hash of it
    behind; and a link code in a stored reply is kept encrypted, returned in clear on a replay."""

    guidance: Guidance | None = None

    async def replay(self) -> JSONResponse | None:
        response = await super().replay()
        if response is None or self.guidance is None:
            return response
        body = json.loads(bytes(response.body))
        if isinstance(body, dict) and isinstance(body.get("link_code"), str):
            body["link_code"] = open_code(self.guidance, body["link_code"])
            headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length",)}
            return JSONResponse(body, status_code=response.status_code, headers=headers)
        return response

    async def respond(
        self, status_code: int, body: BaseModel, headers: dict[str, str] | None = None
    ) -> JSONResponse:
        payload = body.model_dump(mode="json")
        stored = dict(payload)
        if self.guidance is not None and isinstance(stored.get("link_code"), str):
            stored["link_code"] = seal_code(self.guidance, stored["link_code"])
        await self.remember(status_code=status_code, body=stored, headers=headers)
        return JSONResponse(payload, status_code=status_code, headers=headers)


async def idempotency(
    request: Request,
    session: SessionDep,
    keys: GuidanceDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> GuidanceIdempotency:
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise InvalidInput(
            "Idempotency-Key must be 1–255 visible ASCII characters.",
            errors=[FieldError(field="Idempotency-Key", message="1–255 visible ASCII characters")],
        )
    caller = resolve_caller(request)
    body = await request.body()
    digest = keys.hasher.digest(
        request.method + " " + request.url.path + "\n" + body.decode("utf-8", errors="replace")
    )
    return GuidanceIdempotency(
        session=session,
        table=request.app.state.idempotency_table,
        client_id=caller.client_id,
        key=idempotency_key,
        request_hash=digest,
        guidance=keys,
    )


IdempotencyDep = Annotated[GuidanceIdempotency, Depends(idempotency)]


def idempotent(status_code: int = 200) -> Callable[[IdempotentRoute], Callable[..., Awaitable[Response]]]:
    """`shared.idempotency.idempotent` with guidance's own record (keyed hash, sealed link code)."""
    return shared_idempotent(status_code, dependency=IdempotencyDep)
