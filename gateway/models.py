"""The gateway's own tables: its client store, the audit log (a hash chain) and the device
credentials it issued."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


class GatewayModel(SQLModel, registry=registry()):
    pass


metadata = GatewayModel.metadata


class ApiClient(GatewayModel, table=True):
    __tablename__ = "api_client"

    client_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=16)
    bureau: str | None = Field(default=None, max_length=32)
    district_code: str | None = Field(default=None, max_length=6)
    facility_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    secret_hash: str = Field(max_length=255)
    # During a rotation the previous secret stays valid until `previous_secret_expires_at`.
    previous_secret_hash: str | None = Field(default=None, max_length=255)
    previous_secret_expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    enabled: bool = True
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class AuditRecord(GatewayModel, table=True):
    """One call through the gateway. `hash` = HMAC-SHA256 (key `key_id`) over `prev_hash` and the
    record's fields, so a deleted or altered record breaks the chain and only the key's holder can
    mend it. Records written before the chain was keyed have no `key_id`: plain SHA-256. Never a
    request body."""

    __tablename__ = "audit_record"
    __table_args__ = (
        Index("ix_audit_record_at", "at"),
        Index("ix_audit_record_client_seq", "client_id", "seq"),
    )

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    client_id: str = Field(max_length=64)
    client_kind: str = Field(max_length=16)
    bureau: str | None = Field(default=None, max_length=32)
    method: str = Field(max_length=10)
    path: str = Field(max_length=1024)
    status: int
    request_id: str = Field(max_length=128)
    purpose: str | None = Field(default=None, max_length=500)
    duration_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    export: str | None = Field(default=None, max_length=100)  # a list answered as a file: its type
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    key_id: str | None = Field(default=None, max_length=16)


class AuditChainHead(GatewayModel, table=True):
    """The single row every chain append locks (`FOR UPDATE`), so replicas append one at a time.
    `anchor_*` is the last record removed by retention: the chain now starts after it, and
    `anchor_mac` (HMAC with the audit key) shows the gateway moved it. `keyed_from_seq` is the first
    record with a keyed hash (NULL until one is written); every record from it on must be keyed."""

    __tablename__ = "audit_chain_head"

    id: int = Field(primary_key=True)
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_hash: str = Field(max_length=64)
    anchor_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    anchor_hash: str = Field(max_length=64)
    anchor_mac: str | None = Field(default=None, max_length=64)
    keyed_from_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class ParentAccount(GatewayModel, table=True):
    """A parent of the mobile app: phone number and password (argon2); locked after repeated
    failures. `family_id` links the guidance service's family, when known. The phone number is
    personal data: stored encrypted (`phone_encrypted` under `phone_key_id`, GATEWAY_PII_KEYS) and
    found by its keyed hash (`phone_hash`, GATEWAY_PII_HMAC_KEY), never in clear."""

    __tablename__ = "parent_account"

    parent_id: str = Field(primary_key=True, max_length=64)
    phone_hash: str = Field(max_length=64, unique=True)
    phone_key_id: str = Field(max_length=32)
    phone_encrypted: str = Field(max_length=200)
    password_hash: str = Field(max_length=255)
    family_id: str | None = Field(default=None, max_length=36)
    failed_logins: int = 0
    locked_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    enabled: bool = True
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class DeviceCredential(GatewayModel, table=True):
    """A NATS credential the gateway issued to a facility's video system (gateway/device_credentials.py).
    Only the public half is kept: the `.creds` text is shown once and never stored. `nats_user` is what
    a revocation names on the bus; every revoked row is carried in the account's revocations."""

    __tablename__ = "device_credential"
    __table_args__ = (Index("ix_device_credential_facility", "facility_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=36)
    facility_id: str = Field(max_length=64)
    label: str = Field(max_length=200)
    subject: str = Field(max_length=200)
    nats_user: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_by: str = Field(max_length=64)
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    revoked_by: str | None = Field(default=None, max_length=64)
