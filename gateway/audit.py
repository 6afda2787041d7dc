"""The audit log: every call leaves a record, batched in memory and appended to a hash chain.

Each hash is an HMAC-SHA256 with a key held outside the database (`GATEWAY_AUDIT_HMAC_KEY`), so
write access to the database is not enough to rewrite a record and mend the chain after it; signed
checkpoints on JetStream (gateway/checkpoints.py) pin the head, so the newest records cannot be
removed unnoticed either, past the checkpoint interval. Appends are serialized through the single
`audit_chain_head` row (`SELECT … FOR UPDATE` on PostgreSQL; on SQLite the first statement takes the
database's write lock), so several gateway replicas extend one consistent chain."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.checkpoints import Checkpoint
from gateway.models import AuditChainHead, AuditRecord
from shared.bounded import within
from shared.db import is_sqlite
from shared.pii import MIN_HMAC_KEY_BYTES, decode_key

GENESIS = "0" * 64
log = structlog.get_logger("cradle.gateway.audit")
STOP_TIMEOUT_SECONDS = 10.0
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
    export: str | None = None  # the media type of a list answered as a file (CSV, XLSX)


def _utc(value: datetime) -> datetime:
    # SQLite hands timestamps back without their offset; they were written in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class ChainKey:
    """The audit chain's HMAC key. Its id (a MAC of a fixed label, so it reveals nothing of the key)
    is stored with each record and named in each checkpoint."""

    secret: bytes

    @classmethod
    def from_base64(cls, encoded: str) -> ChainKey:
        return cls(decode_key(encoded, min_bytes=MIN_HMAC_KEY_BYTES, exact=False))

    @property
    def key_id(self) -> str:
        return hmac.new(self.secret, b"cradle audit chain key id", hashlib.sha256).hexdigest()[:16]

    def mac(self, message: str) -> str:
        return hmac.new(self.secret, message.encode(), hashlib.sha256).hexdigest()

    def anchor_mac(self, anchor_seq: int, anchor_hash: str) -> str:
        """Vouches for a retention anchor: only the gateway can move the chain's start."""
        return self.mac(f"retention anchor\n{anchor_seq}\n{anchor_hash}")


def record_hash(*, prev_hash: str, seq: int, fields: dict[str, object], key: ChainKey | None) -> str:
    """HMAC-SHA256 (SHA-256 for records from before the chain was keyed: `key` None) over the
    previous hash and a canonical JSON of the record (times in UTC, µs)."""
    canonical = dict(fields, seq=seq)
    at = canonical.get("at")
    if isinstance(at, datetime):
        canonical["at"] = _utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    message = prev_hash + "\n" + payload
    return key.mac(message) if key is not None else hashlib.sha256(message.encode()).hexdigest()


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
    return _hashed({name: getattr(record, name) for name in (*HASHED_FIELDS, "export")})


def _hashed(fields: dict[str, object]) -> dict[str, object]:
    """`export` is hashed only where there is one, so records from before it verify unchanged."""
    if fields.get("export") is None:
        fields.pop("export", None)
    return fields


async def _lock_head(connection: AsyncConnection, *, sqlite: bool) -> Row[Any]:
    if sqlite:
        # A write first: the transaction takes SQLite's write lock before it reads the head.
        await connection.execute(
            update(head_table).where(head_table.c.id == 1).values(last_seq=head_table.c.last_seq)
        )
        query = select(head_table).where(head_table.c.id == 1)
    else:
        query = select(head_table).where(head_table.c.id == 1).with_for_update()
    return (await connection.execute(query)).one()


async def append(engine: AsyncEngine, records: list[PendingRecord], *, key: ChainKey) -> None:
    """Append records to the chain in one transaction."""
    sqlite = is_sqlite(str(engine.url))
    async with engine.begin() as connection:
        head = await _lock_head(connection, sqlite=sqlite)
        seq, prev = int(head.last_seq), str(head.last_hash)
        rows = []
        for record in records:
            seq += 1
            fields = _fields(record)
            digest = record_hash(prev_hash=prev, seq=seq, fields=fields, key=key)
            rows.append(
                {
                    **fields,
                    "export": record.export,
                    "seq": seq,
                    "prev_hash": prev,
                    "hash": digest,
                    "key_id": key.key_id,
                }
            )
            prev = digest
        await connection.execute(insert(record_table), rows)
        moved: dict[str, object] = {"last_seq": seq, "last_hash": prev}
        if head.keyed_from_seq is None:  # the first keyed record: from here on, every one is
            moved["keyed_from_seq"] = int(head.last_seq) + 1
        await connection.execute(update(head_table).where(head_table.c.id == 1).values(**moved))


async def purge(engine: AsyncEngine, *, older_than: datetime, key: ChainKey) -> int:
    """Retention: drop records older than the cutoff and move the chain's anchor past them, with a
    MAC over the new anchor, so `verify` still proves that nothing after the anchor was removed or
    changed, and that the anchor was moved by the key's holder, not by someone deleting records."""
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
            update(head_table)
            .where(head_table.c.id == 1)
            .values(
                anchor_seq=last.seq, anchor_hash=last.hash, anchor_mac=key.anchor_mac(last.seq, last.hash)
            )
        )
        return result.rowcount or 0


class AuditWriter:
    """An in-memory queue, flushed by one background task every `flush_seconds` or as soon as
    `batch_size` records wait; flushed again on shutdown. A failed flush keeps its records."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        key: ChainKey,
        flush_seconds: float,
        batch_size: int,
        max_pending: int,
        retention: timedelta,
        purge_every_seconds: float = 3600.0,
    ) -> None:
        self.engine = engine
        self.key = key
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
            await purge(self.engine, older_than=datetime.now(UTC) - self.retention, key=self.key)
        self._last_purge = asyncio.get_running_loop().time()
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        # Bounded, like every shutdown here: a database that stops answering must not hold the
        # process (what is still pending is then logged as lost, below).
        if self._task is not None and not (await asyncio.wait({self._task}, timeout=STOP_TIMEOUT_SECONDS))[0]:
            # Not waited for (it may be closing a connection that does not answer), and no flush
            # beside it: one still under way could write a record twice.
            self._task.cancel()
            log.error("audit_writer_stop_timed_out", pending=len(self.pending))
            return
        # Whatever arrived while the loop was ending; a failing database is tried a few more times.
        for _ in range(3):
            try:
                if not self.pending or await within(STOP_TIMEOUT_SECONDS, self.flush()):
                    break
            except TimeoutError:
                pass
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
                    removed = await purge(
                        self.engine, older_than=datetime.now(UTC) - self.retention, key=self.key
                    )
                    if removed:
                        log.info("audit_purged", removed=removed)

    async def flush(self) -> bool:
        """Write everything pending, a batch per transaction. False when the database refused."""
        while self.pending:
            batch = [self.pending[i] for i in range(min(self.batch_size, len(self.pending)))]
            try:
                await append(self.engine, batch, key=self.key)
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
    # The checkpoint the chain was held against, and how many records came after it (the window in
    # which a removed tail cannot be told from records never written).
    checkpoint: Checkpoint | None = None
    unanchored: int = 0


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


async def verify(engine: AsyncEngine, *, key: ChainKey, checkpoint: Checkpoint | None = None) -> ChainReport:
    """Walk the chain from its anchor; name the first record that is missing, altered, unkeyed or
    out of place, check that the head still points at the last record, and, given the latest signed
    checkpoint, that every record it vouches for is still there with the hash it had."""
    async with engine.connect() as connection:
        head = (await connection.execute(select(head_table).where(head_table.c.id == 1))).one()
        fail = _Failing(checkpoint)
        keyed_from = head.keyed_from_seq
        if checkpoint is not None:
            if checkpoint.hmac_key_id != key.key_id:
                return fail(
                    None, f"the checkpoint names audit key {checkpoint.hmac_key_id}, not {key.key_id}"
                )
            if checkpoint.keyed_from_seq is not None and keyed_from != checkpoint.keyed_from_seq:
                # Moving where keyed records begin would let older records pass as unkeyed ones.
                return fail(
                    checkpoint.keyed_from_seq,
                    f"the chain head says keyed records begin at {keyed_from}, "
                    f"the checkpoint says {checkpoint.keyed_from_seq}",
                )
        anchor_seq, anchor_hash = int(head.anchor_seq), str(head.anchor_hash)
        if anchor_seq > 0:
            if head.anchor_mac is not None:
                if not hmac.compare_digest(str(head.anchor_mac), key.anchor_mac(anchor_seq, anchor_hash)):
                    return fail(
                        anchor_seq + 1, "the retention anchor was not set by the gateway (MAC mismatch)"
                    )
            elif keyed_from is not None and anchor_seq >= keyed_from:
                return fail(anchor_seq + 1, "the retention anchor carries no MAC")
        if checkpoint is not None and checkpoint.seq == anchor_seq and checkpoint.hash != anchor_hash:
            return fail(anchor_seq, f"record {anchor_seq} differs from the checkpoint")

        expected_seq, expected_prev, checked = anchor_seq + 1, anchor_hash, 0
        async for row in _records(connection):
            seq = int(row["seq"])  # type: ignore[call-overload]
            rid = str(row["request_id"])
            if seq < expected_seq:
                return fail(seq, "record lies before the chain's anchor", checked, rid)
            if seq > expected_seq:
                return fail(expected_seq, f"record {expected_seq} is missing (next is {seq})", checked)
            if row["prev_hash"] != expected_prev:
                return fail(seq, "previous-hash link does not match", checked, rid)
            record_key, problem = _key_for(row["key_id"], seq=seq, keyed_from=keyed_from, key=key)
            if problem is not None:
                return fail(seq, problem, checked, rid)
            fields = _hashed({name: row[name] for name in (*HASHED_FIELDS, "export")})
            digest = record_hash(prev_hash=expected_prev, seq=seq, fields=fields, key=record_key)
            if not hmac.compare_digest(digest, str(row["hash"])):
                return fail(seq, "record was altered (hash mismatch)", checked, rid)
            if checkpoint is not None and seq == checkpoint.seq and digest != checkpoint.hash:
                return fail(seq, f"record {seq} differs from the checkpoint", checked, rid)
            checked += 1
            expected_seq, expected_prev = seq + 1, digest
        last = expected_seq - 1
        if checkpoint is not None and checkpoint.seq > last:
            return fail(
                last + 1,
                f"records {last + 1}..{checkpoint.seq} are missing: the checkpoint signed at "
                f"{checkpoint.at:%Y-%m-%d %H:%M:%S}Z vouches for {checkpoint.seq} records, "
                f"the chain ends at {last}",
                checked,
            )
        if head.last_seq > last:
            return fail(
                last + 1,
                f"records {last + 1}..{head.last_seq} are missing (the chain head is at {head.last_seq})",
                checked,
            )
        if head.last_seq != last or head.last_hash != expected_prev:
            return fail(head.last_seq, "the chain head does not point at the last record", checked)
        unanchored = last - max(checkpoint.seq, anchor_seq) if checkpoint is not None else checked
        return ChainReport(True, checked, checkpoint=checkpoint, unanchored=unanchored)


@dataclass(frozen=True)
class _Failing:
    checkpoint: Checkpoint | None

    def __call__(
        self, seq: int | None, problem: str, checked: int = 0, rid: str | None = None
    ) -> ChainReport:
        return ChainReport(False, checked, seq, problem, rid, checkpoint=self.checkpoint)


def _key_for(
    key_id: object, *, seq: int, keyed_from: int | None, key: ChainKey
) -> tuple[ChainKey | None, str | None]:
    """The key a record must have been hashed with, or why it cannot be right: records before the
    chain was keyed are plain SHA-256, every record from `keyed_from` on is keyed."""
    keyed = keyed_from is not None and seq >= keyed_from
    if key_id is None:
        return None, ("record has no keyed hash inside the keyed chain" if keyed else None)
    if not keyed:
        return None, f"record claims a keyed hash before the keyed chain begins (at {keyed_from})"
    if key_id != key.key_id:
        return None, f"record was hashed with audit key {key_id}, not {key.key_id}"
    return key, None


async def count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(record_table))).scalar_one())
