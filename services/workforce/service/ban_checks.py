"""Ban checks (`POST /v1/ban-checks`): answered from the keyed hash, audited every time, refused
and invalid ones too, and never failing open — no answer leaves before its audit row is committed,
so a database that is down is a 503, never "not banned"."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import Counter
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.workforce.models import Ban, BanCheck
from services.workforce.schemas import BanCheckResult, BanSummary
from services.workforce.service.common import Workforce
from shared.clock import new_id, utcnow
from shared.db import session_scope
from shared.errors import Forbidden, invalid
from shared.i18n import tr
from shared.identity import Identity
from shared.observability import Metrics
from shared.pii import NationalIdError, validate_national_id

CHECK_SCOPE = "workforce:read"


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

    def __init__(
        self, maker: async_sessionmaker[AsyncSession], *, checks: Counter | None = None, max_batch: int = 500
    ) -> None:
        self.maker = maker
        self.checks = checks
        self.max_batch = max_batch
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, row: dict[str, Any]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="ban-check-audit")
        # Shielded: a caller that goes away does not cancel the batch the others wait for.
        await asyncio.shield(done)

    async def _write_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                async with session_scope(self.maker) as session:
                    await session.execute(insert(BanCheck.__table__), [row for row, _ in batch])
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
            for row, done in batch:
                if self.checks is not None:
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
    engine: AsyncEngine,
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
    # A connection of its own (Core: the hot path), returned before waiting for the audit writer.
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(Ban.id, Ban.role, Ban.decision_ref, Ban.issued_at)
                .where(Ban.id_hash == id_hash, Ban.status == "active")
                .order_by(Ban.issued_at)
            )
        ).all()
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
            BanSummary(ban_id=r.id, role=r.role, decision_ref=r.decision_ref, issued_at=r.issued_at)
            for r in rows
        ],
        checked_at=row["checked_at"],
    )
