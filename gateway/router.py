"""The gateway's own paths: parents' sign-in, clients, the audit log (client tokens: gateway/oauth.py).
Everything else is forwarded by the front door (gateway/frontdoor.py) without reaching these routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from gateway import parents, service
from gateway.deps import (
    AdminDep,
    AuditReaderDep,
    FacilityReaderDep,
    HasherDep,
    IndicatorReaderDep,
    RuntimeDep,
    SettingsDep,
    ViewsDep,
)
from gateway.errors import TooManyRequests
from gateway.parents import PhoneKeys
from gateway.schemas import (
    AuditRead,
    ClientCreate,
    ClientCreated,
    ClientRead,
    FacilityProfile,
    IndicatorRow,
    ParentLogin,
    ParentRegister,
    PlanIndicators,
    RotatedSecret,
    SecretRotation,
    TokenResponse,
)
from gateway.sign_in import SignInGuard
from shared.clock import Timestamp
from shared.errors import invalid
from shared.export import EXPORT_RESPONSES, ExportDep
from shared.pagination import MAX_LIMIT, Page, PageParams, decode_cursor, encode_cursor
from shared.service import SessionDep

router = APIRouter(prefix="/v1")
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
CLIENT_ID = r"^[A-Za-z0-9._:-]+$"
CursorQuery = Annotated[str | None, Query(max_length=512)]


def sign_in_guard(request: Request) -> SignInGuard:
    return request.app.state.sign_in


def phone_keys(request: Request) -> PhoneKeys:
    return request.app.state.phone_keys


def client_address(request: Request) -> str:
    """The caller's address as uvicorn saw it (X-Forwarded-For only from its trusted proxies)."""
    return request.client.host if request.client else "unknown"


GuardDep = Annotated[SignInGuard, Depends(sign_in_guard)]
PhoneKeysDep = Annotated[PhoneKeys, Depends(phone_keys)]
AddressDep = Annotated[str, Depends(client_address)]


@router.post("/auth/parents/register", status_code=201, response_model=TokenResponse, tags=["auth"])
async def register_parent(
    body: ParentRegister,
    session: SessionDep,
    settings: SettingsDep,
    hasher: HasherDep,
    guard: GuardDep,
    phones: PhoneKeysDep,
    address: AddressDep,
) -> TokenResponse:
    """A parent account for the mobile app; the reply is already a `parent` token."""
    return await parents.register(
        session=session,
        settings=settings,
        hasher=hasher,
        guard=guard,
        phones=phones,
        address=address,
        data=body,
    )


@router.post("/auth/parents/login", response_model=TokenResponse, tags=["auth"])
async def login_parent(
    body: ParentLogin,
    session: SessionDep,
    settings: SettingsDep,
    hasher: HasherDep,
    guard: GuardDep,
    phones: PhoneKeysDep,
    address: AddressDep,
) -> TokenResponse:
    """Phone and password → a `parent` token. Repeated wrong passwords lock the account a while, except
    from where the parent signed in recently; failures are limited per address and per account (429
    with Retry-After)."""
    try:
        claim = await parents.claim_login(
            session=session, settings=settings, guard=guard, phones=phones, address=address, phone=body.phone
        )
    except TooManyRequests:
        await session.commit()  # the lock this attempt set holds
        raise
    await session.commit()  # the attempt counts before argon2 runs, even if the caller leaves meanwhile
    token, refusal = await parents.login(
        session=session, settings=settings, hasher=hasher, guard=guard, claim=claim, password=body.password
    )
    if refusal is not None:
        await session.commit()  # the lock this failure set must outlive the refusal
        raise refusal
    assert token is not None
    return token


@router.post("/admin/clients", status_code=201, response_model=ClientCreated, tags=["admin"])
async def create_client(
    body: ClientCreate, session: SessionDep, hasher: HasherDep, _admin: AdminDep
) -> ClientCreated:
    """Register a bureau, district, operator or app client; its secret is shown once."""
    return await service.create_client(session=session, hasher=hasher, data=body)


@router.get("/admin/clients", response_model=Page[ClientRead], tags=["admin"])
async def list_clients(
    session: SessionDep, _admin: AdminDep, limit: LimitQuery = 50, cursor: CursorQuery = None
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
async def disable_client(
    client_id: str, session: SessionDep, runtime: RuntimeDep, _admin: AdminDep
) -> ClientRead:
    """Disable a client: its secret stops working and its tokens are refused (on every gateway
    replica within `client_cache_seconds`). Clients are kept for the audit trail."""
    client = await service.disable_client(session=session, client_id=client_id)
    runtime.clients.set(client_id, False)
    return service.to_read(client)


@router.post("/admin/clients/{client_id}/rotate-secret", response_model=RotatedSecret, tags=["admin"])
async def rotate_secret(
    client_id: str,
    session: SessionDep,
    settings: SettingsDep,
    hasher: HasherDep,
    _admin: AdminDep,
    body: SecretRotation | None = None,
) -> RotatedSecret:
    """A new secret, shown once; the current one keeps working for the grace period."""
    grace = settings.secret_rotation_grace_seconds
    if body is not None and body.grace_seconds is not None:
        grace = body.grace_seconds
    client, secret, ends = await service.rotate_secret(
        session=session, hasher=hasher, client_id=client_id, grace_seconds=grace
    )
    return RotatedSecret(client_id=client.client_id, client_secret=secret, previous_secret_expires_at=ends)


@router.get("/audit", response_model=Page[AuditRead], tags=["audit"])
async def list_audit(
    session: SessionDep,
    _reader: AuditReaderDep,
    client_id: Annotated[str | None, Query(max_length=64, pattern=CLIENT_ID)] = None,
    since: Timestamp | None = None,
    path: Annotated[
        str | None, Query(max_length=1024, pattern=r"^/[^\x00-\x1f\x7f]*$", description="A path prefix")
    ] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[AuditRead]:
    """The audit log, newest first. Records reach it within a fraction of a second of the call."""
    before = None
    if cursor:
        position = decode_cursor(cursor)
        if len(position) != 1 or type(position[0]) is not int or not 0 <= position[0] < 2**62:
            raise invalid("cursor", "is not a cursor this API returned")
        before = position[0]
    if since is not None:
        if since.tzinfo is None:
            raise invalid("since", "needs a time zone offset (RFC 3339)")
        since = since.astimezone(UTC)
    rows = await service.list_audit(
        session=session, client_id=client_id, since=since, path=path, limit=limit, before_seq=before
    )
    items = [service.to_audit_read(r) for r in rows[:limit]]
    next_cursor = encode_cursor([items[-1].seq]) if len(rows) > limit and items else None
    return Page[AuditRead](items=items, next_cursor=next_cursor)


# Documented by the model, answered as built: a part's absent `data` or `reason` stays absent.
@router.get(
    "/facilities/{facility_id}/profile",
    tags=["views"],
    response_model=None,
    responses={200: {"model": FacilityProfile, "description": "The profile, part by part"}},
)
async def facility_profile(
    facility_id: Annotated[str, Path(max_length=64)],
    request: Request,
    caller: FacilityReaderDep,
    views: ViewsDep,
) -> dict[str, Any]:
    """One facility in one reply: its registry record, staffing and this year's training compliance,
    open alerts, last inspection and risk, each read from its service with your identity (so you see
    what you may see). A part whose service is down or slow is `unavailable`; the rest still returns."""
    return await views.profile(facility_id=facility_id, caller=caller, request_id=request.state.request_id)


@router.get("/indicators", response_model=PlanIndicators, tags=["views"], responses=EXPORT_RESPONSES)
async def plan_indicators(
    request: Request,
    _reader: IndicatorReaderDep,
    views: ViewsDep,
    export: ExportDep,
    year: Annotated[int | None, Query(ge=2020, le=2100, description="Default: this year")] = None,
) -> dict[str, Any] | Response:
    """Every indicator of the 2020–2022 plan (DOMAIN.md) for a year: target, actual, met, task, and the
    numerator and denominator behind each rate; a source service that is down leaves its indicators
    `unavailable` (`met: null`), never a wrong figure. With `Accept: text/csv` or XLSX, the rows as a
    file."""
    year = year or datetime.now(UTC).year
    indicators = await views.indicators(year=year, request_id=request.state.request_id)
    if export.wanted:

        async def rows(page: PageParams) -> dict[str, Any]:
            return {"items": indicators["items"], "next_cursor": None}

        return await export.respond_pages(rows, name=f"indicators-{year}", model=IndicatorRow)
    return indicators
