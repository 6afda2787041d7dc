"""The rule every service holding personal data follows before it shows any unmasked: the caller
holds the service's PII scope *and* says why (X-Purpose); and the record that it did, written in
the same transaction as the read. Each service keeps its own `pii_access` table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.identity import Identity


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
