"""Transactional outbox. `emit` writes the event in the caller's transaction; `OutboxRelay` publishes
committed rows to JetStream with `Nats-Msg-Id` = event id and marks a row sent only after the
server's ack. Woken right after a commit that wrote events; polls only as a fallback."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import structlog
from opentelemetry.trace import Span, SpanKind, StatusCode
from sqlalchemy import Row, Table, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import tracing
from shared.bounded import raise_if_cancelling, stop_task
from shared.contracts import contract_for
from shared.db import OUTBOX_DIRTY, writer_turn
from shared.events.bus import EventBus
from shared.events.envelope import CloudEvent, DomainEvent
from shared.events.streams import Namespace
from shared.observability import Metrics

log = structlog.get_logger("cradle.outbox")
OUTBOX_WRITER = "cradle_outbox_writer"
MAX_RETRY_DELAY_SECONDS = 300
PURGE_EVERY_SECONDS = 3600
# NATS refuses messages over its max_payload (1 MiB by default); refuse them here, in the caller's
# transaction, rather than store an event that can never leave.
MAX_EVENT_BYTES = 512 * 1024


@dataclass(frozen=True)
class OutboxWriter:
    table: Table
    namespace: Namespace
    source: str  # CloudEvents `source`, e.g. "/cradle/registry"


def _describe(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def outbox_session_info(writer: OutboxWriter) -> dict[str, object]:
    return {OUTBOX_WRITER: writer}


def _outbox_row(
    writer: OutboxWriter, event: DomainEvent, request_id: str | None, trace: dict[str, str]
) -> tuple[CloudEvent, dict]:
    data = event.model_dump(mode="json")
    # The payload is checked against its type's contract as it will be read: an event built
    # without validation, or changed after, would otherwise reach consumers that refuse it.
    # An unknown type or a broken payload is a bug in the producer, so it fails the transaction.
    contract_for(event.event_type).model_validate(data)
    envelope = CloudEvent(
        source=writer.source,
        type=event.event_type,
        subject=event.subject_id(),
        data=data,
        requestid=request_id,
        traceparent=trace.get("traceparent"),
        tracestate=trace.get("tracestate"),
    )
    payload = envelope.model_dump_json(exclude_none=True)
    if len(payload.encode()) > MAX_EVENT_BYTES:
        raise ValueError(
            f"{event.event_type} is {len(payload.encode())} bytes; events carry facts, not files"
        )
    row = {
        "event_id": envelope.id,
        "subject": writer.namespace.subject(envelope.type),
        "payload": payload,
        "created_at": envelope.time,
        "attempts": 0,
    }
    return envelope, row


async def emit(session: AsyncSession, event: DomainEvent) -> CloudEvent:
    """Record `event` in the current transaction: it leaves if and only if the transaction commits."""
    return (await emit_many(session, [event]))[0]


async def emit_many(session: AsyncSession, events: Sequence[DomainEvent]) -> list[CloudEvent]:
    """`emit` for many events at once: one executemany INSERT (hot paths that raise events in bulk)."""
    if not events:
        return []
    writer: OutboxWriter = session.info[OUTBOX_WRITER]
    # The request's (or the handled event's, or the job round's) id and span. Every event carries
    # both: one that nothing in context caused (a command's seed) gets a trace and an id of its own.
    request_id = structlog.contextvars.get_contextvars().get("request_id") or uuid.uuid4().hex
    trace = tracing.current_fields() or tracing.new_trace_fields(f"emit {events[0].event_type}")
    built = [_outbox_row(writer, event, request_id, trace) for event in events]
    rows = [row for _, row in built]
    if len(rows) == 1:
        await session.execute(insert(writer.table).values(**rows[0]))
    else:
        await session.execute(insert(writer.table), rows)
    session.info[OUTBOX_DIRTY] = True
    return [envelope for envelope, _ in built]


def _publish_span(row: Row) -> Span:
    """The relay's publish of one event, in the trace of the request that wrote it."""
    try:
        envelope = orjson.loads(row.payload)
    except orjson.JSONDecodeError:
        envelope = {}
    parent = tracing.context_from(envelope.get("traceparent"), envelope.get("tracestate"))
    return tracing.tracer.start_span(
        f"publish {row.subject}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "nats",
            "messaging.destination.name": row.subject,
            "messaging.message.id": row.event_id,
            "cradle.attempt": row.attempts + 1,
        },
    )


class OutboxRelay:
    def __init__(
        self,
        *,
        maker: async_sessionmaker[AsyncSession],
        table: Table,
        bus: EventBus,
        metrics: Metrics,
        lock_rows: bool,
        batch_size: int = 256,
        poll_seconds: float = 2.0,
        publish_timeout: float = 2.0,
        keep_sent: timedelta = timedelta(days=7),
    ) -> None:
        self.maker = maker
        self.table = table
        self.bus = bus
        self.metrics = metrics
        # PostgreSQL: rows are claimed with FOR UPDATE SKIP LOCKED, so replicas never publish the same
        # batch. SQLite has one writer at a time and no row locks; Nats-Msg-Id dedup covers the rest.
        self.lock_rows = lock_rows
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.publish_timeout = publish_timeout
        self.keep_sent = keep_sent
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        await stop_task("outbox relay", self._task, seconds=5.0)

    async def _run(self) -> None:
        await self.bus.wait_ready()
        next_purge = 0.0
        while True:
            try:
                while await self.relay_once() == self.batch_size:
                    pass
                if asyncio.get_running_loop().time() >= next_purge:
                    await self.purge_sent(older_than=self.keep_sent)
                    next_purge = asyncio.get_running_loop().time() + PURGE_EVERY_SECONDS
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the relay must outlive any one failure
                raise_if_cancelling()
                log.warning("outbox_relay_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.poll_seconds)
            self._wakeup.clear()

    async def relay_once(self) -> int:
        """Publish one batch of due events; return how many JetStream acknowledged."""
        if not self.bus.connected:
            return 0
        t = self.table
        now = datetime.now(UTC)
        due = (
            select(t.c.seq, t.c.event_id, t.c.subject, t.c.payload, t.c.attempts)
            .where(t.c.sent_at.is_(None), or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= now))
            .order_by(t.c.seq)
            .limit(self.batch_size)
        )
        if self.lock_rows:
            async with self.maker() as session, session.begin():
                rows = (await session.execute(due.with_for_update(skip_locked=True))).all()
                acked, failures = await self._publish(rows)
                await self._record(session, rows, acked, failures)
        else:
            async with self.maker() as session:
                rows = (await session.execute(due)).all()
            acked, failures = await self._publish(rows)
            if acked or failures:
                async with writer_turn(self.maker), self.maker() as session, session.begin():
                    await self._record(session, rows, acked, failures)
        return len(acked)

    async def _publish(self, rows: Sequence[Row]) -> tuple[list[int], dict[int, str]]:
        """Send the whole batch, then wait for every ack at once; each row succeeds or fails alone,
        so one event JetStream refuses never holds back the others."""
        if not rows:
            return [], {}
        js = self.bus.js
        assert js is not None
        futures: dict[int, asyncio.Future[object]] = {}
        failures: dict[int, str] = {}
        spans = {row.seq: _publish_span(row) for row in rows}
        for row in rows:
            try:
                futures[row.seq] = await js.publish_async(
                    row.subject, row.payload.encode(), headers={"Nats-Msg-Id": row.event_id}
                )
            except Exception as exc:
                failures[row.seq] = _describe(exc)
        if futures:
            _, late = await asyncio.wait(futures.values(), timeout=self.publish_timeout)
            for future in late:
                future.cancel()
        acked: list[int] = []
        for seq, future in futures.items():
            if future.cancelled():
                failures[seq] = "no acknowledgement within the publish timeout"
            elif future.exception() is not None:
                failures[seq] = _describe(future.exception())
            else:
                acked.append(seq)
        for seq, span in spans.items():
            if seq in failures:
                span.set_status(StatusCode.ERROR, failures[seq][:200])
            span.end()
        if acked:
            self.metrics.events_published.labels(self.metrics.service).inc(len(acked))
        if failures:
            log.warning(
                "outbox_publish_failed",
                failed=len(failures),
                acked=len(acked),
                error=next(iter(failures.values())),
            )
        return acked, failures

    async def _record(
        self, session: AsyncSession, rows: Sequence[Row], acked: list[int], failures: dict[int, str]
    ) -> None:
        t = self.table
        now = datetime.now(UTC)
        if acked:
            await session.execute(update(t).where(t.c.seq.in_(acked)).values(sent_at=now))
        if not failures:
            return
        # With the broker gone every row fails for the same reason: retry as soon as it returns
        # (the reconnect wakes the relay). With the broker up, the row itself is refused: back off.
        broker_up = self.bus.connected
        attempts = {row.seq: row.attempts for row in rows}
        for seq, error in failures.items():
            tries = attempts[seq] + 1
            values: dict[str, object] = {"attempts": tries, "last_error": error}
            if broker_up:
                values["next_attempt_at"] = now + timedelta(seconds=min(2**tries, MAX_RETRY_DELAY_SECONDS))
                if tries >= 5:
                    log.error("outbox_event_stuck", seq=seq, attempts=tries, error=error)
            await session.execute(update(t).where(t.c.seq == seq).values(**values))

    async def purge_sent(self, *, older_than: timedelta) -> int:
        """Delete rows published long ago; the stream and the consumers' inboxes keep the history."""
        t = self.table
        async with writer_turn(self.maker), self.maker() as session, session.begin():
            result = await session.execute(
                delete(t).where(t.c.sent_at.is_not(None), t.c.sent_at < datetime.now(UTC) - older_than)
            )
        return result.rowcount or 0

    async def backlog(self) -> tuple[int, datetime | None]:
        """Rows not yet acknowledged, and when the oldest of them was written (the pager's view)."""
        t = self.table
        async with self.maker() as session:
            rows, oldest = (
                await session.execute(
                    select(func.count(), func.min(t.c.created_at)).where(t.c.sent_at.is_(None))
                )
            ).one()
        return int(rows), oldest

    async def pending_count(self) -> int:
        async with self.maker() as session:
            return int(
                (
                    await session.execute(select(func.count()).where(self.table.c.sent_at.is_(None)))
                ).scalar_one()
            )
