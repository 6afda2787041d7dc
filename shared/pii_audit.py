"""The rule every service holding personal data follows before it shows any unmasked: the caller
holds the service's PII scope *and* says why (X-Purpose); and the record that it did, written in
the same transaction as the read. Each service keeps its own `pii_access` table, of the columns
`PiiAccessRecord` declares."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from shared.identity import Identity


class PiiAccessRecord(SQLModel):
    """The audit of every unmasked read of personal data: a service's table is
    `class PiiAccess(ItsModel, PiiAccessRecord, table=True)` named `pii_access`."""

    id: str = Field(primary_key=True, max_length=36)
    accessed_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    client_id: str = Field(max_length=64, index=True)
    record_type: str = Field(max_length=32)
    record_id: str = Field(max_length=36, index=True)
    fields: str = Field(max_length=100)
    purpose: str = Field(max_length=300)
    request_id: str | None = Field(default=None, max_length=128)


def may_unmask(caller: Identity, purpose: str | None, *, scope: str) -> bool:
    return caller.has_scope(scope) and bool(purpose)


def record_unmasked_read(
    session: AsyncSession,
    model: Any,
    *,
    caller: Identity,
    record_type: str,
    record_id: str,
    fields: str,
    purpose: str,
    request_id: str | None,
) -> None:
    """`model` is the service's `PiiAccess` table class."""
    session.add(
        model(
            id=str(uuid.uuid4()),
            accessed_at=datetime.now(UTC),
            client_id=caller.client_id,
            record_type=record_type,
            record_id=record_id,
            fields=fields,
            purpose=purpose[:300],
            request_id=request_id,
        )
    )
