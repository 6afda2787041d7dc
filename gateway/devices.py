"""The gateway's device-credential paths: a facility's video system gets a NATS credential that
publishes that facility's CCTV events only (gateway/device_credentials.py). The front door audits
every call (path and status), the secret never: it is in the one reply that issues it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway import device_credentials as devices
from gateway.deps import OptionalCallerDep, ViewsDep
from gateway.device_credentials import DeviceBus
from gateway.models import DeviceCredential
from shared.errors import Forbidden, Unauthorized, invalid
from shared.i18n import tr
from shared.identity import ClientKind, Identity
from shared.pagination import MAX_LIMIT, Page, decode_cursor, encode_cursor
from shared.service import SessionDep
from shared.text import Name

router = APIRouter(prefix="/v1/facilities/{facility_id}/device-credentials", tags=["device credentials"])
UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# A facility id becomes a NATS subject token: only a registry id (a UUID) is taken.
FacilityId = Annotated[str, Path(pattern=UUID, description="The registry's facility id")]
CredentialId = Annotated[str, Path(pattern=UUID)]
MAX_VALID_DAYS = 5 * 366


class DeviceCredentialCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"label": "NVR, building 2", "valid_days": 365}]}
    )

    label: Name = Field(description="What the device is, e.g. `NVR, building 2`")
    valid_days: int | None = Field(
        default=None, ge=1, le=MAX_VALID_DAYS, description="The credential stops working after this"
    )


class DeviceCredentialRead(BaseModel):
    id: str
    facility_id: str
    label: str
    subject: str = Field(description="The one NATS subject this credential may publish to")
    nats_user: str = Field(description="The credential's NATS user (public key), as server logs name it")
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None


class DeviceCredentialIssued(DeviceCredentialRead):
    creds: str = Field(description="The `.creds` file: shown once, never stored; keep it secret")
    inbox_prefix: str = Field(description="Connect with this inbox prefix (publish acks arrive there)")


def device_bus(request: Request) -> DeviceBus | None:
    return request.app.state.device_bus


DeviceBusDep = Annotated[DeviceBus | None, Depends(device_bus)]


def _caller_with(caller: Identity, *scopes: str) -> Identity:
    if caller.kind == ClientKind.public:
        raise Unauthorized("This path needs a token from POST /v1/auth/token.")
    if not any(caller.has_scope(scope) for scope in scopes):
        raise Forbidden(tr("This needs one of the scopes: {scopes}.", scopes=", ".join(scopes)))
    return caller


def issuer_caller(caller: OptionalCallerDep) -> Identity:
    # Issuing hands the facility's `monitoring:ingest` right to a device.
    return _caller_with(caller, "monitoring:ingest")


def reader_caller(caller: OptionalCallerDep) -> Identity:
    return _caller_with(caller, "monitoring:ingest", "monitoring:read", "monitoring:write")


def revoker_caller(caller: OptionalCallerDep) -> Identity:
    return _caller_with(caller, "monitoring:ingest", "monitoring:write")


def to_read(row: DeviceCredential) -> DeviceCredentialRead:
    return DeviceCredentialRead.model_validate(row, from_attributes=True)


@router.post("", status_code=201, response_model=DeviceCredentialIssued)
async def issue_device_credential(
    facility_id: FacilityId,
    body: DeviceCredentialCreate,
    request: Request,
    session: SessionDep,
    views: ViewsDep,
    bus: DeviceBusDep,
    caller: Annotated[Identity, Depends(issuer_caller)],
) -> DeviceCredentialIssued:
    """A NATS credential for one of your facilities' video systems: it may publish CCTV events to
    `<namespace>.ingest.cctv.<facility_id>` and nothing else. The `.creds` text is in this reply only."""
    await devices.facility_for_devices(
        views=views, caller=caller, facility_id=facility_id, request_id=request.state.request_id, issuing=True
    )
    row, creds = await devices.issue_credential(
        session=session,
        bus=bus,
        caller=caller,
        facility_id=facility_id,
        label=body.label,
        valid_days=body.valid_days,
    )
    return DeviceCredentialIssued(
        **to_read(row).model_dump(), creds=creds, inbox_prefix=devices.device_inbox_prefix(row.id)
    )


@router.get("", response_model=Page[DeviceCredentialRead])
async def list_device_credentials(
    facility_id: FacilityId,
    request: Request,
    session: SessionDep,
    views: ViewsDep,
    caller: Annotated[Identity, Depends(reader_caller)],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Page[DeviceCredentialRead]:
    """The facility's device credentials, newest first, revoked ones too; never a secret."""
    after = _position(cursor) if cursor else None
    await devices.facility_for_devices(
        views=views,
        caller=caller,
        facility_id=facility_id,
        request_id=request.state.request_id,
        issuing=False,
    )
    rows = await devices.list_credentials(session=session, facility_id=facility_id, limit=limit, after=after)
    items = [to_read(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit and items:
        next_cursor = encode_cursor([items[-1].created_at.isoformat(), items[-1].id])
    return Page[DeviceCredentialRead](items=items, next_cursor=next_cursor)


@router.delete("/{credential_id}", response_model=DeviceCredentialRead)
async def revoke_device_credential(
    facility_id: FacilityId,
    credential_id: CredentialId,
    request: Request,
    session: SessionDep,
    views: ViewsDep,
    bus: DeviceBusDep,
    caller: Annotated[Identity, Depends(revoker_caller)],
) -> DeviceCredentialRead:
    """Revoke a device credential on every node of the bus: its connections close at once and it is
    refused from then on. Answers once the cluster has taken it (503 if it did not: retry)."""
    await devices.facility_for_devices(
        views=views,
        caller=caller,
        facility_id=facility_id,
        request_id=request.state.request_id,
        issuing=False,
    )
    row = await devices.revoke_credential(
        session=session, bus=bus, caller=caller, facility_id=facility_id, credential_id=credential_id
    )
    return to_read(row)


def _position(cursor: str) -> tuple[datetime, str]:
    position = decode_cursor(cursor)
    try:
        at, credential_id = position
        return datetime.fromisoformat(at), str(credential_id)
    except (TypeError, ValueError):
        raise invalid("cursor", "is not a cursor this API returned") from None
