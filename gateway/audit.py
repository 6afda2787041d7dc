"""The audit log: every call leaves a record, batched in memory and appended to a hash chain.

Appends are serialized through the single `audit_chain_head` row (`SELECT … FOR UPDATE` on
PostgreSQL; on SQLite the first statement takes the database's write lock), so several gateway
replicas extend one consistent chain."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.models import AuditChainHead, AuditRecord
from shared.db import is_sqlite

GENESIS = "0" * 64
log = structlog.get_logger("cradle.gateway.audit")
record_table = AuditRecord.__table__
head_table = AuditChainHead.__table__


@dataclass(slots=True)
class PendingRecord:
    at: datetime
    client_id: str
    client_kind: str
    bureau: str | None
    method: str
    path: str
    status: int
    request_id: str
    purpose: str | None
    duration_us: int


def _utc(value: datetime) -> datetime:
    # SQLite hands timestamps back without their offset; they were written in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def record_hash(*, prev_hash: str, seq: int, fields: dict[str, object]) -> str:
    """SHA-256 over the previous hash and a canonical JSON of the record (times in UTC, µs)."""
    canonical = dict(fields, seq=seq)
    at = canonical.get("at")
    if isinstance(at, datetime):
        canonical["at"] = _utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + "\n" + payload).encode()).hexdigest()


HASHED_FIELDS = (
    "at",
    "client_id",
    "client_kind",
    "bureau",
    "method",
    "path",
    "status",
    "request_id",
    "purpose",
    "duration_us",
)


def _fields(record: PendingRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in HASHED_FIELDS}


async def _lock_head(connection: AsyncConnection, *, sqlite: bool) -> tuple[int, str, int, str]:
    if sqlite:
        # A write first: the transaction takes SQLite's write lock before it reads the head.
        await connection.execute(
            update(head_table).where(head_table.c.id == 1).values(last_seq=head_table.c.last_seq)
        )
        query = select(head_table).where(head_table.c.id == 1)
    else:
        query = select(head_table).where(head_table.c.id == 1).with_for_update()
    row = (await connection.execute(query)).one()
    return row.last_seq, row.last_hash, row.anchor_seq, row.anchor_hash


async def append(engine: AsyncEngine, records: list[PendingRecord]) -> None:
    """Append records to the chain in one transaction."""
    sqlite = is_sqlite(str(engine.url))
    async with engine.begin() as connection:
        seq, prev, _, _ = await _lock_head(connection, sqlite=sqlite)
        rows = []
        for record in records:
            seq += 1
            fields = _fields(record)
            digest = record_hash(prev_hash=prev, seq=seq, fields=fields)
            rows.append({**fields, "seq": seq, "prev_hash": prev, "hash": digest})
            prev = digest
        await connection.execute(insert(record_table), rows)
        await connection.execute(
            update(head_table).where(head_table.c.id == 1).values(last_seq=seq, last_hash=prev)
        )


async def purge(engine: AsyncEngine, *, older_than: datetime) -> int:
    """Retention: drop records older than the cutoff and move the chain's anchor past them, so
    `verify` still proves that nothing after the anchor was removed or changed."""
    sqlite = is_sqlite(str(engine.url))
    async with engine.begin() as connection:
        await _lock_head(connection, sqlite=sqlite)
        last = (
            await connection.execute(
                select(record_table.c.seq, record_table.c.hash)
                .where(record_table.c.at < older_than)
                .order_by(record_table.c.seq.desc())
                .limit(1)
            )
        ).first()
        if last is None:
            return 0
        result = await connection.execute(delete(record_table).where(record_table.c.seq <= last.seq))
        await connection.execute(
            update(head_table).where(head_table.c.id == 1).values(anchor_seq=last.seq, anchor_hash=last.hash)
        )
        return result.rowcount or 0


class AuditWriter:
    """An in-memory queue, flushed by one background task every `flush_seconds` or as soon as
    `batch_size` records wait; flushed again on shutdown. A failed flush keeps its records."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        flush_seconds: float,
        batch_size: int,
        max_pending: int,
        retention: timedelta,
        purge_every_seconds: float = 3600.0,
    ) -> None:
        self.engine = engine
        self.flush_seconds = flush_seconds
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.retention = retention
        self.purge_every_seconds = purge_every_seconds
        self.pending: deque[PendingRecord] = deque()
        self.written = 0
        self.failures = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_purge = 0.0

    @property
    def overloaded(self) -> bool:
        return len(self.pending) >= self.max_pending

    def add(self, record: PendingRecord) -> None:
        self.pending.append(record)
        if len(self.pending) >= self.batch_size:
            self._wake.set()

    async def start(self) -> None:
        """Apply retention once, before the first request, then run the writer. (After this, every
        `purge_every_seconds`: the loop's clock counts from boot, so the first pass must not depend
        on the machine's uptime.)"""
        with contextlib.suppress(Exception):
            await purge(self.engine, older_than=datetime.now(UTC) - self.retention)
        self._last_purge = asyncio.get_running_loop().time()
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        # Whatever arrived while the loop was ending; a failing database is tried a few more times.
        for _ in range(3):
            if not self.pending or await self.flush():
                break
            await asyncio.sleep(0.2)
        if self.pending:
            log.error("audit_records_lost_at_shutdown", count=len(self.pending))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_seconds)
            self._wake.clear()
            if not await self.flush():
                await asyncio.sleep(min(1.0, self.flush_seconds * 5))  # database trouble: back off
            if loop.time() - self._last_purge > self.purge_every_seconds:
                self._last_purge = loop.time()
                with contextlib.suppress(Exception):
                    removed = await purge(self.engine, older_than=datetime.now(UTC) - self.retention)
                    if removed:
                        log.info("audit_purged", removed=removed)

    async def flush(self) -> bool:
        """Write everything pending, a batch per transaction. False when the database refused."""
        while self.pending:
            batch = [self.pending[i] for i in range(min(self.batch_size, len(self.pending)))]
            try:
                await append(self.engine, batch)
            except Exception as exc:  # the records stay queued and are retried
                self.failures += 1
                log.error(
                    "audit_flush_failed",
                    error=f"{type(exc).__name__}: {exc}"[:300],
                    pending=len(self.pending),
                )
                return False
            for _ in batch:
                self.pending.popleft()
            self.written += len(batch)
        return True


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    problem: str | None = None
    request_id: str | None = None


async def _records(connection: AsyncConnection, chunk: int = 5000) -> AsyncIterator[dict[str, object]]:
    after = -1
    while True:
        rows = (
            (
                await connection.execute(
                    select(record_table)
                    .where(record_table.c.seq > after)
                    .order_by(record_table.c.seq)
                    .limit(chunk)
                )
            )
            .mappings()
            .all()
        )
        if not rows:
            return
        for row in rows:
            yield dict(row)
        after = int(rows[-1]["seq"])


async def verify(engine: AsyncEngine) -> ChainReport:
    """Walk the chain from its anchor; name the first record that is missing, altered or out of
    place, and check that the head still points at the last record (a removed tail shows)."""
    async with engine.connect() as connection:
        head = (await connection.execute(select(head_table).where(head_table.c.id == 1))).one()
        expected_seq, expected_prev, checked = head.anchor_seq + 1, head.anchor_hash, 0
        async for row in _records(connection):
            seq = int(row["seq"])  # type: ignore[call-overload]
            rid = str(row["request_id"])
            if seq < expected_seq:
                return ChainReport(False, checked, seq, "record lies before the chain's anchor", rid)
            if seq > expected_seq:
                return ChainReport(
                    False, checked, expected_seq, f"record {expected_seq} is missing (next is {seq})"
                )
            if row["prev_hash"] != expected_prev:
                return ChainReport(False, checked, seq, "previous-hash link does not match", rid)
            fields = {name: row[name] for name in HASHED_FIELDS}
            if record_hash(prev_hash=expected_prev, seq=seq, fields=fields) != row["hash"]:
                return ChainReport(False, checked, seq, "record was altered (hash mismatch)", rid)
            checked += 1
            expected_seq, expected_prev = seq + 1, str(row["hash"])
        if head.last_seq > expected_seq - 1:
            return ChainReport(
                False,
                checked,
                expected_seq,
                f"records {expected_seq}..{head.last_seq} are missing (the chain head is at {head.last_seq})",
            )
        if head.last_seq != expected_seq - 1 or head.last_hash != expected_prev:
            return ChainReport(
                False, checked, head.last_seq, "the chain head does not point at the last record"
            )
        return ChainReport(True, checked)


async def count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(record_table))).scalar_one())
