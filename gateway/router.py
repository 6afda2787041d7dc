"""The gateway's own paths (tokens, clients) and the forwarding of every other /v1 path."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import StreamingResponse

from gateway import service
from gateway.deps import AdminDep, OptionalCallerDep, SettingsDep
from gateway.proxy import read_bounded_body
from gateway.routes import is_public, service_for
from gateway.schemas import ClientCreate, ClientCreated, ClientRead, TokenResponse
from shared.errors import NotFound, Unauthorized
from shared.identity import PUBLIC_IDENTITY
from shared.observability import request_id_of
from shared.pagination import MAX_LIMIT, Page, decode_cursor, encode_cursor
from shared.service import SessionDep

router = APIRouter(prefix="/v1")


@router.post("/auth/token", response_model=TokenResponse, tags=["auth"])
async def issue_token(
    grant_type: Annotated[Literal["client_credentials"], Form()],
    client_id: Annotated[str, Form(min_length=1, max_length=64)],
    client_secret: Annotated[str, Form(min_length=1, max_length=256)],
    session: SessionDep,
    settings: SettingsDep,
) -> TokenResponse:
    """OAuth2 client credentials: a short-lived bearer token for the client's scopes."""
    return await service.issue_token(
        session=session, settings=settings, client_id=client_id, client_secret=client_secret
    )


@router.post("/admin/clients", status_code=201, response_model=ClientCreated, tags=["admin"])
async def create_client(body: ClientCreate, session: SessionDep, _admin: AdminDep) -> ClientCreated:
    """Register a bureau, district, operator or app client; its secret is shown once."""
    return await service.create_client(session=session, data=body)


@router.get("/admin/clients", response_model=Page[ClientRead], tags=["admin"])
async def list_clients(
    session: SessionDep,
    _admin: AdminDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Page[ClientRead]:
    after = decode_cursor(cursor)[0] if cursor else None
    rows = await service.list_clients(session=session, limit=limit, after=str(after) if after else None)
    items = [service.to_read(c) for c in rows[:limit]]
    next_cursor = encode_cursor([items[-1].client_id]) if len(rows) > limit and items else None
    return Page[ClientRead](items=items, next_cursor=next_cursor)


@router.get("/admin/clients/{client_id}", response_model=ClientRead, tags=["admin"])
async def read_client(client_id: str, session: SessionDep, _admin: AdminDep) -> ClientRead:
    return service.to_read(await service.get_client(session=session, client_id=client_id))


@router.delete("/admin/clients/{client_id}", response_model=ClientRead, tags=["admin"])
async def disable_client(client_id: str, session: SessionDep, _admin: AdminDep) -> ClientRead:
    """Disable a client: its secret stops working at once. Clients are kept for the audit trail."""
    return service.to_read(await service.disable_client(session=session, client_id=client_id))


FORWARDED_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


@router.api_route("/{path:path}", methods=FORWARDED_METHODS, include_in_schema=False)
async def forward(request: Request, caller: OptionalCallerDep, settings: SettingsDep) -> StreamingResponse:
    target = service_for(request.url.path)
    if target is None:
        raise NotFound(f"No such path: {request.url.path}")
    if caller is PUBLIC_IDENTITY and not is_public(request.method, request.url.path):
        raise Unauthorized("This path needs a token from POST /v1/auth/token.")
    body = await read_bounded_body(request, settings.max_body_bytes)
    return await request.app.state.forwarder.forward(
        request=request, service=target, caller=caller, body=body, request_id=request_id_of(request)
    )
