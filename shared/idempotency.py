"""`Idempotency-Key` on POST: the same key and body within 24 h returns the first answer and does
nothing twice. The answer is stored in the same transaction as the change it describes, so a
crash can never leave a change without its record (or a record without its change)."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import FieldError, InvalidInput
from shared.identity import Identity, resolve_caller
from shared.service import SessionDep

IDEMPOTENCY = "idempotency_record"
KEEP_FOR = timedelta(hours=24)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def idempotency_table(metadata: MetaData) -> Table:
    return Table(
        IDEMPOTENCY,
        metadata,
        Column("client_id", String(64), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("request_hash", String(64), nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("body", Text, nullable=False),
        Column("headers", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )


def create_idempotency_table() -> None:
    """For a service's migration: the table as first created (frozen here)."""
    from alembic import op  # alembic (with mako and pygments) only where migrations run: ~0.3 s a start

    op.create_table(
        IDEMPOTENCY,
        Column("client_id", String(64), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("request_hash", String(64), nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("body", Text, nullable=False),
        Column("headers", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )


@dataclass
class Idempotency:
    session: AsyncSession
    table: Table
    client_id: str
    key: str | None
    request_hash: str

    async def replay(self) -> JSONResponse | None:
        """The stored answer for this key, or None when the request is new."""
        if self.key is None:
            return None
        t = self.table
        row = (
            await self.session.execute(select(t).where(t.c.client_id == self.client_id, t.c.key == self.key))
        ).one_or_none()
        if row is None:
            return None
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        if created < datetime.now(UTC) - KEEP_FOR:
            await self.session.execute(delete(t).where(t.c.client_id == self.client_id, t.c.key == self.key))
            return None
        if row.request_hash != self.request_hash:
            raise InvalidInput(
                "This Idempotency-Key was used with a different request.",
                errors=[FieldError(field="Idempotency-Key", message="already used for another request body")],
            )
        headers = {**json.loads(row.headers), "Idempotent-Replayed": "true"}
        return JSONResponse(json.loads(row.body), status_code=row.status_code, headers=headers)

    async def respond(
        self, status_code: int, body: BaseModel, headers: dict[str, str] | None = None
    ) -> JSONResponse:
        """The reply, remembered under the request's key in the same transaction as the change."""
        payload = body.model_dump(mode="json")
        await self.remember(status_code=status_code, body=payload, headers=headers)
        return JSONResponse(payload, status_code=status_code, headers=headers)

    async def remember(self, *, status_code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        if self.key is None:
            return
        await self.session.execute(
            insert(self.table).values(
                client_id=self.client_id,
                key=self.key,
                request_hash=self.request_hash,
                status_code=status_code,
                body=json.dumps(jsonable_encoder(body), ensure_ascii=False),
                headers=json.dumps(headers or {}),
                created_at=datetime.now(UTC),
            )
        )


async def idempotency(
    request: Request,
    session: SessionDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Idempotency:
    if idempotency_key is not None and not _KEY.match(idempotency_key):
        raise InvalidInput(
            "Idempotency-Key must be 1–255 visible ASCII characters.",
            errors=[FieldError(field="Idempotency-Key", message="1–255 visible ASCII characters")],
        )
    caller: Identity = resolve_caller(request)
    digest = hashlib.sha256()
    digest.update(request.method.encode() + b" " + request.url.path.encode() + b"\n")
    digest.update(await request.body())
    return Idempotency(
        session=session,
        table=request.app.state.idempotency_table,
        client_id=caller.client_id,
        key=idempotency_key,
        request_hash=digest.hexdigest(),
    )


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]


@dataclass(frozen=True)
class Reply:
    """What an idempotent route answers when the body alone is not enough: its headers too
    (`Location`, `ETag`)."""

    body: BaseModel
    headers: dict[str, str] | None = None


IdempotentRoute = Callable[..., Awaitable[BaseModel | Reply | Response]]


def idempotent(
    status_code: int = 200, *, dependency: Any = None
) -> Callable[[IdempotentRoute], Callable[..., Awaitable[Response]]]:
    """A POST route run once per `Idempotency-Key`: a repeat of the key with the same request replays
    the first reply (`Idempotent-Replayed: true`) and runs nothing; the reply is stored in the
    route's own transaction. The route returns its body, a `Reply` with headers, or a `Response`
    it has remembered itself (a refusal that still commits). `dependency` is a service's own
    `Annotated[Idempotency, Depends(...)]` when it stores replies differently (default: this
    module's `IdempotencyDep`).

        @router.post("/things", status_code=201, response_model=ThingRead)
        @idempotent(201)
        async def add_thing(body: ThingCreate, session: SessionDep, caller: Writer) -> ThingRead:
            return await things.add(session=session, caller=caller, data=body)
    """

    def decorate(route: IdempotentRoute) -> Callable[..., Awaitable[Response]]:
        # FastAPI reads the wrapper's signature: the route's own parameters, their annotations
        # resolved in the route's module, and the idempotency dependency after them.
        hints = typing.get_type_hints(route, include_extras=True)
        signature = inspect.signature(route)
        parameters = [
            p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
        ]
        parameters.append(
            inspect.Parameter(
                "idempotency", inspect.Parameter.KEYWORD_ONLY, annotation=dependency or IdempotencyDep
            )
        )

        @functools.wraps(route)
        async def run_once(*args: Any, idempotency: Idempotency, **kwargs: Any) -> Response:
            if replay := await idempotency.replay():
                return replay
            result = await route(*args, **kwargs)
            if isinstance(result, Response):
                return result
            reply = result if isinstance(result, Reply) else Reply(result)
            return await idempotency.respond(status_code, reply.body, reply.headers)

        run_once.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=parameters, return_annotation=Response
        )
        return run_once

    return decorate
