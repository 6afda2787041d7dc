"""Transactional outbox. `emit` writes the event in the caller's transaction; `OutboxRelay` publishes
committed rows to JetStream with `Nats-Msg-Id` = event id and marks a row sent only after the
server's ack. Woken right after a commit that wrote events; polls only as a fallback."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import OUTBOX_DIRTY
from shared.events.bus import EventBus
from shared.events.envelope import CloudEvent, DomainEvent
from shared.events.streams import Namespace
from shared.observability import Metrics

log = structlog.get_logger("cradle.outbox")
OUTBOX_WRITER = "cradle_outbox_writer"


@dataclass(frozen=True)
class OutboxWriter:
    table: Table
    namespace: Namespace
    source: str  # CloudEvents `source`, e.g. "/cradle/registry"


def outbox_session_info(writer: OutboxWriter) -> dict[str, object]:
    return {OUTBOX_WRITER: writer}


async def emit(session: AsyncSession, event: DomainEvent) -> CloudEvent:
    """Record `event` in the current transaction: it leaves if and only if the transaction commits."""
    writer: OutboxWriter = session.info[OUTBOX_WRITER]
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    envelope = CloudEvent(
        source=writer.source,
        type=event.event_type,
        subject=event.subject_id(),
        data=event.model_dump(mode="json"),
        requestid=request_id,
    )
    await session.execute(
        insert(writer.table).values(
            event_id=envelope.id,
            subject=writer.namespace.subject(envelope.type),
            payload=envelope.model_dump_json(exclude_none=True),
            created_at=envelope.time,
            attempts=0,
        )
    )
    session.info[OUTBOX_DIRTY] = True
    return envelope


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
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        await self.bus.wait_ready()
        while True:
            try:
                while await self.relay_once() == self.batch_size:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the relay must outlive any one failure
                log.warning("outbox_relay_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.poll_seconds)
            self._wakeup.clear()

    async def relay_once(self) -> int:
        """Publish one batch of pending events; return how many JetStream acknowledged."""
        if not self.bus.connected:
            return 0
        t = self.table
        pending = (
            select(t.c.seq, t.c.event_id, t.c.subject, t.c.payload)
            .where(t.c.sent_at.is_(None))
            .order_by(t.c.seq)
            .limit(self.batch_size)
        )
        if self.lock_rows:
            async with self.maker() as session, session.begin():
                rows = (await session.execute(pending.with_for_update(skip_locked=True))).all()
                acked, failed, error = await self._publish(rows)
                await self._record(session, acked, failed, error)
        else:
            async with self.maker() as session:
                rows = (await session.execute(pending)).all()
            acked, failed, error = await self._publish(rows)
            if acked or failed:
                async with self.maker() as session, session.begin():
                    await self._record(session, acked, failed, error)
        return len(acked)

    async def _publish(self, rows: list) -> tuple[list[int], list[int], str | None]:
        if not rows:
            return [], [], None
        js = self.bus.js
        assert js is not None
        futures = []
        try:
            for row in rows:
                futures.append(
                    await js.publish_async(
                        row.subject, row.payload.encode(), headers={"Nats-Msg-Id": row.event_id}
                    )
                )
        except Exception as exc:
            for f in futures:
                f.cancel()
            return [], [r.seq for r in rows], f"{type(exc).__name__}: {exc}"[:500]
        acked: list[int] = []
        failed: list[int] = []
        error: str | None = None
        for row, future in zip(rows, futures, strict=True):
            if error is not None:
                future.cancel()
                failed.append(row.seq)
                continue
            try:
                await asyncio.wait_for(future, timeout=self.publish_timeout)
                acked.append(row.seq)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
                failed.append(row.seq)
        if acked:
            self.metrics.events_published.labels(self.metrics.service).inc(len(acked))
        if error:
            log.warning("outbox_publish_failed", failed=len(failed), error=error)
        return acked, failed, error

    async def _record(
        self, session: AsyncSession, acked: list[int], failed: list[int], error: str | None
    ) -> None:
        t = self.table
        if acked:
            await session.execute(update(t).where(t.c.seq.in_(acked)).values(sent_at=datetime.now(UTC)))
        if failed:
            await session.execute(
                update(t).where(t.c.seq.in_(failed)).values(attempts=t.c.attempts + 1, last_error=error)
            )

    async def pending_count(self) -> int:
        async with self.maker() as session:
            return int(
                (
                    await session.execute(select(func.count()).where(self.table.c.sent_at.is_(None)))
                ).scalar_one()
            )
