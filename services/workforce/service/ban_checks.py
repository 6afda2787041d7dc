"""Ban checks (`POST /v1/ban-checks`): answered from the keyed hash, audited every time, refused
and invalid ones too, and never failing open — no answer leaves before its audit row is committed,
so a database that is down is a 503, never "not banned"."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import Counter
from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.workforce.models import Ban, BanCheck
from services.workforce.schemas import (
    BanCheckBatchItem,
    BanCheckBatchResult,
    BanCheckResult,
    BanSummary,
    RejectedIdNumber,
)
from services.workforce.service.common import Workforce
from shared.clock import new_id, utcnow
from shared.db import OneTrip
from shared.errors import FieldError, Forbidden, invalid
from shared.i18n import tr
from shared.identity import Identity
from shared.observability import Metrics
from shared.pii import NationalIdError, mask, validate_national_id

CHECK_SCOPE = "workforce:read"

# Built once: constructing a select costs more than running this one (a profile showed it).
AUDIT_INSERT = insert(BanCheck.__table__)
ACTIVE_BANS = (
    select(Ban.id, Ban.role, Ban.decision_ref, Ban.issued_at)
    .where(Ban.id_hash == bindparam("id_hash"), Ban.status == "active")
    .order_by(Ban.issued_at)
)
ACTIVE_BANS_OF_MANY = (
    select(Ban.id_hash, Ban.id, Ban.role, Ban.decision_ref, Ban.issued_at)
    .where(Ban.id_hash.in_(bindparam("id_hashes", expanding=True)), Ban.status == "active")
    .order_by(Ban.issued_at)
)


def ban_check_counter(metrics: Metrics) -> Counter:
    return Counter(
        "cradle_ban_checks_total",
        "Ban checks answered (their audit row committed), by outcome: banned, not_banned, invalid, refused",
        ["outcome"],
        registry=metrics.registry,
    )


class CheckAudit:
    """Group commit for audit rows. Each caller waits until the transaction holding its row has
    committed (or failed, and then the caller fails too); rows that arrive while one batch commits
    go into the next. One writer instead of one per request: SQLite's single write lock is never
    fought over, and PostgreSQL flushes its log once per batch rather than once per check."""

    def __init__(self, trips: OneTrip, *, checks: Counter | None = None, max_rows: int = 2000) -> None:
        self.trips = trips
        self.checks = checks
        self.max_rows = max_rows  # per transaction; a batch check's rows are never split
        self._pending: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, row: dict[str, Any]) -> None:
        await self.record_many([row])

    async def record_many(self, rows: list[dict[str, Any]]) -> None:
        """All of `rows` commit in one transaction, or none: the caller answers only after."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="ban-check-audit")
        # Shielded: a caller that goes away does not cancel the batch the others wait for.
        await asyncio.shield(done)

    def _next_batch(self) -> list[tuple[list[dict[str, Any]], asyncio.Future[None]]]:
        taken, size = 0, 0
        while taken < len(self._pending) and (
            taken == 0 or size + len(self._pending[taken][0]) <= self.max_rows
        ):
            size += len(self._pending[taken][0])
            taken += 1
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        return batch

    async def _write_all(self) -> None:
        while self._pending:
            batch = self._next_batch()
            try:
                # One INSERT, executed for every row of the batch (executemany), and its commit.
                await self.trips.insert_many(AUDIT_INSERT, [row for rows, _ in batch for row in rows])
            except BaseException as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    for _, done in self._pending:
                        done.cancel()
                    self._pending = []
                    raise
                continue
            for rows, done in batch:
                if self.checks is not None:
                    for row in rows:
                        self.checks.labels(row["outcome"]).inc()
                if not done.done():
                    done.set_result(None)


def _row(
    caller: Identity, *, outcome: str, id_hash: str | None, purpose: str | None, request_id: str | None
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "checked_at": utcnow(),
        "client_id": caller.client_id,
        "client_kind": caller.kind.value,
        "outcome": outcome,
        "id_hash": id_hash,
        "purpose": purpose[:300] if purpose else None,
        "request_id": request_id,
    }


async def check_ban(
    *,
    trips: OneTrip,
    audit: CheckAudit,
    workforce: Workforce,
    caller: Identity,
    id_number: str,
    purpose: str | None,
    request_id: str | None,
) -> BanCheckResult:
    """The audit row is written in a transaction of its own, committed before the answer, or the
    error, goes out."""
    if not caller.has_scope(CHECK_SCOPE):
        await audit.record(
            _row(caller, outcome="refused", id_hash=None, purpose=purpose, request_id=request_id)
        )
        raise Forbidden(
            tr(
                "Ban checks need the `{check_scope}` scope; this attempt was recorded.",
                check_scope=CHECK_SCOPE,
            )
        )
    try:
        number = validate_national_id(id_number)
    except NationalIdError as exc:
        await audit.record(
            _row(caller, outcome="invalid", id_hash=None, purpose=purpose, request_id=request_id)
        )
        raise invalid("id_number", str(exc)) from None
    id_hash = workforce.hash_id(number)
    # One trip to the database (the hot path), done before waiting for the audit writer.
    rows = await trips.all(ACTIVE_BANS, {"id_hash": id_hash})
    row = _row(
        caller,
        outcome="banned" if rows else "not_banned",
        id_hash=id_hash,
        purpose=purpose,
        request_id=request_id,
    )
    await audit.record(row)
    return BanCheckResult(
        banned=bool(rows),
        bans=[
            BanSummary(ban_id=ban_id, role=role, decision_ref=decision_ref, issued_at=issued_at)
            for ban_id, role, decision_ref, issued_at in rows
        ],
        checked_at=row["checked_at"],
    )


async def check_bans(
    *,
    engine: AsyncEngine,
    audit: CheckAudit,
    workforce: Workforce,
    caller: Identity,
    id_numbers: list[str],
    purpose: str | None,
    request_id: str | None,
) -> BanCheckBatchResult:
    """Up to 1,000 checks in one call, each audited as a check of its own (an invalid number as
    `invalid`, every one of a refused call as `refused`), all audit rows committed in one
    transaction before the answer: one query for the bans, one INSERT for the rows."""
    if not caller.has_scope(CHECK_SCOPE):
        refused = _row(caller, outcome="refused", id_hash=None, purpose=purpose, request_id=request_id)
        await audit.record_many([{**refused, "id": new_id()} for _ in id_numbers])
        raise Forbidden(
            tr(
                "Ban checks need the `{check_scope}` scope; these attempts were recorded.",
                check_scope=CHECK_SCOPE,
            )
        )
    hashes: list[str | None] = []
    rejected: list[RejectedIdNumber] = []
    for index, raw in enumerate(id_numbers):
        try:
            hashes.append(workforce.hash_id(validate_national_id(raw)))
        except NationalIdError as exc:
            hashes.append(None)
            rejected.append(
                RejectedIdNumber(
                    index=index, errors=[FieldError(field=f"id_numbers[{index}]", message=str(exc))]
                )
            )
    wanted = sorted({h for h in hashes if h is not None})
    bans_of: dict[str, list[BanSummary]] = {}
    if wanted:
        async with engine.connect() as connection:
            for r in await connection.execute(ACTIVE_BANS_OF_MANY, {"id_hashes": wanted}):
                bans_of.setdefault(r.id_hash, []).append(
                    BanSummary(ban_id=r.id, role=r.role, decision_ref=r.decision_ref, issued_at=r.issued_at)
                )
    checked_at = utcnow()
    base = _row(caller, outcome="", id_hash=None, purpose=purpose, request_id=request_id) | {
        "checked_at": checked_at
    }
    rows = [
        base
        | {
            "id": new_id(),
            "id_hash": h,
            "outcome": "invalid" if h is None else "banned" if h in bans_of else "not_banned",
        }
        for h in hashes
    ]
    await audit.record_many(rows)
    return BanCheckBatchResult(
        items=[
            BanCheckBatchItem(
                index=index,
                id_number_masked=mask(id_numbers[index]),
                banned=h in bans_of,
                bans=bans_of.get(h, []),
            )
            for index, h in enumerate(hashes)
            if h is not None
        ],
        rejected=rejected,
        checked_at=checked_at,
    )
