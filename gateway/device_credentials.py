"""NATS credentials for a facility's video system: it may publish its CCTV events to
`<ns>.ingest.cctv.<facility_id>` and nothing else. Issued with the CRADLE account's device signing
key; revoked at run time on every node by pushing the account's JWT, with the revocation added,
through the system account (`$SYS.REQ.CLAIMS.UPDATE`) to the `full` resolvers.

Trust: pushing an account JWT needs an operator signing key, so whoever holds `device_issuer.json`
can rewrite the CRADLE account (its signing keys, hence every permission on the bus). The gateway
holds it; removing that signing key from the operator JWT takes the power back.

Who may: the operator of the facility (it is in its `facility_ids`) issues, lists and revokes; the
facility's district and the EDU bureau list and revoke. Whether the caller may see the facility at
all is the registry's answer to the caller's own identity (404 there → 404 here)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nats
import structlog
from nats.errors import Error as NatsError
from sqlalchemy import and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import GatewaySettings
from gateway.models import DeviceCredential
from gateway.views import Views
from shared.errors import Forbidden, NotFound, ServiceUnavailable
from shared.events.permissions import device_permissions, inbox_prefix
from shared.events.streams import Namespace
from shared.events.tls import client_tls
from shared.i18n import N_, tr
from shared.identity import ClientKind, Identity
from shared.nats_auth import (
    AccountClaims,
    NatsAuthError,
    NKey,
    creds,
    decode_jwt,
    lookup_account_jwt,
    push_account_jwt,
    user_jwt,
)

log = structlog.get_logger("cradle.gateway.devices")
# Any constant: it names the one advisory lock every gateway replica takes around a revocation.
REVOCATION_LOCK = 0x43524452_44455631
MANAGING_BUREAU = "EDU"


@dataclass(frozen=True)
class IssuedDevice:
    user: str  # the device's NATS user public key: what a revocation names
    creds: str  # the `.creds` text, shown once


@dataclass(frozen=True)
class DeviceIssuer:
    namespace: Namespace
    operator: str
    account: str
    operator_signing: NKey
    devices_signing: NKey

    @classmethod
    def from_file(cls, path: Path) -> DeviceIssuer:
        stored = json.loads(path.read_text())
        return cls(
            namespace=Namespace(stored["namespace"]),
            operator=stored["operator"],
            account=stored["account"],
            operator_signing=NKey(stored["operator_signing_seed"]),
            devices_signing=NKey(stored["devices_signing_seed"]),
        )

    def issue(self, *, facility_id: str, credential_id: str, expires_at: int | None = None) -> IssuedDevice:
        # The id becomes a subject token: a dot or a wildcard would widen what the device may publish.
        for name, token in (("facility_id", facility_id), ("credential_id", credential_id)):
            if not token or any(c in token for c in ".*> \t\r\n"):
                raise ValueError(f"{name} {token!r} is not one NATS subject token")
        user = NKey.new("user")
        token = user_jwt(
            user.public_key,
            name=f"device {credential_id} of facility {facility_id}",
            account=self.account,
            signer=self.devices_signing,
            permissions=device_permissions(
                self.namespace, facility_id=facility_id, credential_id=credential_id
            ),
            expires_at=expires_at,
        )
        return IssuedDevice(user=user.public_key, creds=creds(token, user.seed))

    async def revoke(
        self, *, nats_url: str, claims_creds: Path, users: list[str], tls_ca: Path | None = None
    ) -> None:
        """Revoke these device users now: their JWTs stop working and their connections close, on
        every node. The cluster's current account JWT is the base, so nothing else changes."""
        nc = await nats.connect(
            nats_url.split(","),
            name="cradle-gateway-claims",
            user_credentials=str(claims_creds),
            tls=client_tls(tls_ca),
            connect_timeout=5,
            allow_reconnect=False,
            max_reconnect_attempts=0,
        )
        try:
            current = await lookup_account_jwt(nc, self.account)
            trusted = {self.operator, self.operator_signing.public_key}
            claims = AccountClaims.from_jwt(current, trusted_issuers=trusted)
            now = int(time.time())
            for user in users:
                # A user already revoked keeps its time: its one JWT was issued before either.
                claims.revocations.setdefault(user, now)
            # iat one past the current one: a resolver keeps the newest JWT it has seen.
            issued_at = max(now, _issued_at(current) + 1)
            await push_account_jwt(nc, claims.sign(self.operator_signing, issued_at=issued_at))
        finally:
            await nc.close()


def _issued_at(token: str) -> int:
    return int(decode_jwt(token)["iat"])


@dataclass
class DeviceBus:
    """What the gateway needs to issue and revoke: the issuer keys, where the cluster is and the
    system-account credential that may push the account's JWT."""

    issuer: DeviceIssuer
    nats_url: str
    claims_creds: Path
    tls_ca: Path | None = None
    # Revocations of one replica one at a time (lookup → push); replicas serialize in PostgreSQL.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> DeviceBus | None:
        if settings.device_issuer_file is None or settings.nats_claims_creds is None:
            return None
        issuer = DeviceIssuer.from_file(settings.device_issuer_file)
        if issuer.namespace.name != settings.event_namespace:
            raise ValueError(
                f"{settings.device_issuer_file} issues for namespace {issuer.namespace.name!r}, "
                f"but the gateway runs in {settings.event_namespace!r}"
            )
        if not settings.nats_claims_creds.is_file():
            raise ValueError(f"GATEWAY_NATS_CLAIMS_CREDS: no file {settings.nats_claims_creds}")
        return cls(
            issuer=issuer,
            nats_url=settings.nats_url,
            claims_creds=settings.nats_claims_creds,
            tls_ca=settings.nats_tls_ca,
        )


def _not_configured() -> ServiceUnavailable:
    return ServiceUnavailable(
        "This gateway issues no device credentials: GATEWAY_DEVICE_ISSUER_FILE and "
        "GATEWAY_NATS_CLAIMS_CREDS are not set (see deploy/README.md).",
        retry_after=60,
    )


# ---- who may --------------------------------------------------------------------------------------


def may_manage(caller: Identity, *, issuing: bool) -> bool:
    """The kinds of client that manage device credentials at all; which facility is checked after."""
    if caller.kind == ClientKind.operator:
        return True
    return not issuing and (caller.kind == ClientKind.district or caller.is_bureau(MANAGING_BUREAU))


async def facility_for_devices(
    *, views: Views, caller: Identity, facility_id: str, request_id: str, issuing: bool
) -> dict[str, Any]:
    """The registry's record of the facility, if this caller may manage its devices; else 404 (it
    may not see it) or 403 (it sees it, but is not who manages its devices)."""
    if caller.kind == ClientKind.operator and facility_id not in caller.facility_ids:
        raise NotFound(tr("No facility {facility_id} that you may see.", facility_id=facility_id))
    token = views.forwarder.signer.sign(caller, request_id=request_id)
    part = await views.fetch("registry", f"/v1/facilities/{quote(facility_id, safe='')}", token, request_id)
    if part.status == "not_found":
        raise NotFound(tr("No facility {facility_id} that you may see.", facility_id=facility_id))
    if part.status == "not_permitted":
        raise Forbidden("Finding the facility needs the `registry:read` scope.")
    if part.status != "ok" or not isinstance(part.data, dict):
        raise ServiceUnavailable(part.reason or "The registry did not answer.", retry_after=5)
    # The registry decided; checked again here so a district never manages another's facility.
    if caller.kind == ClientKind.district and part.data.get("district_code") != caller.district_code:
        raise NotFound(tr("No facility {facility_id} that you may see.", facility_id=facility_id))
    if not may_manage(caller, issuing=issuing):
        who = N_("its operator") if issuing else N_("its operator, its district or the EDU bureau")
        raise Forbidden(tr("Only {who} manages a facility's device credentials.", who=who))
    return part.data


# ---- issue, list, revoke --------------------------------------------------------------------------


async def issue_credential(
    *,
    session: AsyncSession,
    bus: DeviceBus | None,
    caller: Identity,
    facility_id: str,
    label: str,
    valid_days: int | None,
) -> tuple[DeviceCredential, str]:
    """A new credential and its `.creds` text (never stored: shown once)."""
    if bus is None:
        raise _not_configured()
    now = datetime.now(UTC)
    credential_id = str(uuid.uuid4())
    expires_at = now + timedelta(days=valid_days) if valid_days is not None else None
    device = bus.issuer.issue(
        facility_id=facility_id,
        credential_id=credential_id,
        expires_at=int(expires_at.timestamp()) if expires_at is not None else None,
    )
    row = DeviceCredential(
        id=credential_id,
        facility_id=facility_id,
        label=label,
        subject=bus.issuer.namespace.ingest_subject(facility_id),
        nats_user=device.user,
        created_at=now,
        created_by=caller.client_id,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    log.info("device_credential_issued", credential_id=credential_id, facility_id=facility_id)
    return row, device.creds


async def list_credentials(
    *, session: AsyncSession, facility_id: str, limit: int, after: tuple[datetime, str] | None
) -> list[DeviceCredential]:
    """Newest first; one row more than `limit` when there is a next page."""
    query = select(DeviceCredential).where(DeviceCredential.facility_id == facility_id)
    if after is not None:
        at, credential_id = after
        query = query.where(
            or_(
                DeviceCredential.created_at < at,
                and_(DeviceCredential.created_at == at, DeviceCredential.id < credential_id),
            )
        )
    query = query.order_by(DeviceCredential.created_at.desc(), DeviceCredential.id.desc()).limit(limit + 1)
    return list((await session.execute(query)).scalars())


async def revoke_credential(
    *, session: AsyncSession, bus: DeviceBus | None, caller: Identity, facility_id: str, credential_id: str
) -> DeviceCredential:
    """Revoke on every node, then record it; if the bus refuses, nothing is recorded (503, retry).
    Revoking twice changes nothing. The pushed revocations are the cluster's plus every revoked row,
    so a revocation a node lost (or a race between replicas) is mended by the next one."""
    if bus is None:
        raise _not_configured()
    if (await session.connection()).dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REVOCATION_LOCK})
    query = (
        select(DeviceCredential)
        .where(DeviceCredential.id == credential_id, DeviceCredential.facility_id == facility_id)
        .with_for_update()
    )
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        raise NotFound(
            tr(
                "No device credential {credential_id} of facility {facility_id}.",
                credential_id=credential_id,
                facility_id=facility_id,
            )
        )
    if row.revoked_at is not None:
        return row
    revoked = select(DeviceCredential.nats_user).where(DeviceCredential.revoked_at.is_not(None))
    users = [*(await session.execute(revoked)).scalars(), row.nats_user]
    async with bus.lock:
        try:
            await bus.issuer.revoke(
                nats_url=bus.nats_url, claims_creds=bus.claims_creds, users=users, tls_ca=bus.tls_ca
            )
        except (NatsError, NatsAuthError, TimeoutError, OSError) as exc:
            log.warning("device_revocation_failed", credential_id=credential_id, error=type(exc).__name__)
            raise ServiceUnavailable(
                "The event bus did not take the revocation; nothing changed. Retry.", retry_after=5
            ) from None
    row.revoked_at = datetime.now(UTC)
    row.revoked_by = caller.client_id
    await session.flush()
    log.info("device_credential_revoked", credential_id=credential_id, facility_id=facility_id)
    return row


def device_inbox_prefix(credential_id: str) -> str:
    """The inbox prefix the device must connect with (its credential may subscribe there only)."""
    return inbox_prefix(credential_id)
