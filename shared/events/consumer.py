"""Idempotent JetStream consumers. Each delivery is handled in one transaction that also writes the
event id to the inbox; the message is acked only after that commit. A repeat is acked and skipped.
Failures are retried with backoff up to `max_deliver`, then dead-lettered; a payload that breaks its
contract is dead-lettered at once.

A service that registers a batch handler (delivery) has each fetched batch handled in one
transaction instead: the inbox rows inserted together, the new events given to the batch handler in
arrival order, every message acked after the commit. A batch that fails is rolled back and its
messages handled one by one as above, so a poison message is retried and dead-lettered alone;
a message delivered before (retried, or its ack lost) is always handled alone."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from pydantic import ValidationError
from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import ReturningInsert

from shared import tracing
from shared.bounded import raise_if_cancelling, settle, stop_task
from shared.db import writer_turn
from shared.events.bus import EventBus
from shared.events.deadletters import dead_letter_headers, facility_of, waiting_counts
from shared.events.envelope import CloudEvent
from shared.observability import Metrics
from shared.rows import RowsInsert

log = structlog.get_logger("cradle.consumer")

Handler = Callable[[CloudEvent, AsyncSession], Awaitable[None]]
# The same work as the handlers, for many events (none a repeat) in one session, in arrival order.
BatchHandler = Callable[[Sequence[CloudEvent], AsyncSession], Awaitable[None]]
STOP_TIMEOUT_SECONDS = 5.0


async def stop_pulling(task: asyncio.Task[None] | None, subscription: Any) -> None:
    """Stop a pull loop and its subscription. Bounded: shutting down never waits on a broker or a
    database that does not answer."""
    await stop_task("consumer", task, seconds=STOP_TIMEOUT_SECONDS)
    if subscription is not None:
        # A fetch cut short leaves messages the connection's drain would wait on forever.
        await settle("consumer subscription", subscription.unsubscribe(), seconds=STOP_TIMEOUT_SECONDS)


@contextlib.contextmanager
def handling(
    name: str,
    *,
    request_id: str | None,
    traceparent: str | bytes | None,
    tracestate: str | bytes | None,
    attributes: dict[str, str],
    **fields: Any,
) -> Iterator[Span]:
    """The one place a consumer's work is put in context: a consumer span continuing the producer's
    trace, and `request_id`, `trace_id` (and `fields`) bound to every log line written inside it —
    the runner's, the handler's, the service's — and carried on by the events it emits. Every pull
    loop (the event consumers, monitoring's dead letters and CCTV ingest, delivery's sender) handles
    its messages inside one of these."""
    with tracing.consumer_span(
        name,
        tracing.context_from(traceparent, tracestate),
        {**attributes, "cradle.request_id": request_id or ""},
    ) as span:
        bound = structlog.contextvars.bind_contextvars(
            request_id=request_id, trace_id=tracing.trace_id_of(span), **fields
        )
        try:
            yield span
        finally:
            structlog.contextvars.reset_contextvars(**bound)


async def dead_letter_concern(bus: EventBus, service: str, *, consumers: bool) -> str | None:
    """For /readyz: the service's consumers' dead letters not yet replayed, or None. One JetStream
    request; with NATS away the `nats` check already says so."""
    if not consumers or not bus.connected or bus.js is None:
        return None
    counts = await asyncio.wait_for(waiting_counts(bus.js, bus.namespace, service), timeout=2)
    if not counts:
        return None
    waiting = ", ".join(f"{consumer}: {count}" for consumer, count in sorted(counts.items()))
    return f"{sum(counts.values())} dead letter(s) waiting for `cradle dlq replay` ({waiting})"


@dataclass(frozen=True)
class ConsumerPolicy:
    max_deliver: int = 5
    ack_wait_seconds: float = 30.0
    backoff_seconds: tuple[float, ...] = (1.0, 5.0, 15.0, 60.0)
    batch: int = 64


class EventConsumer:
    """A durable pull consumer on one producing service's stream, named `<service>` there."""

    def __init__(
        self,
        *,
        service: str,
        source_service: str,
        handlers: dict[str, Handler],
        bus: EventBus,
        maker: async_sessionmaker[AsyncSession],
        inbox: Table,
        metrics: Metrics,
        policy: ConsumerPolicy,
        batch_handler: BatchHandler | None = None,
    ) -> None:
        self.service = service
        self.source_service = source_service
        self.handlers = handlers
        self.batch_handler = batch_handler
        self.bus = bus
        self.maker = maker
        self.inbox = inbox
        self.metrics = metrics
        self.policy = policy
        self.durable = service
        self._task: asyncio.Task[None] | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None

    @property
    def stream(self) -> str:
        return self.bus.namespace.stream(self.source_service)

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.policy.ack_wait_seconds,
            max_deliver=self.policy.max_deliver,
            filter_subjects=sorted(self.bus.namespace.subject(t) for t in self.handlers),
            max_ack_pending=1000,
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.stream}-{self.durable}")

    async def stop(self) -> None:
        await stop_pulling(self._task, self._subscription)
        self._subscription = None

    async def _run(self) -> None:
        while True:
            try:
                js = await self.bus.wait_ready()
                # add_consumer creates or updates, so a changed config is applied, not ignored.
                await js.add_consumer(self.stream, config=self.config())
                subscription = await js.pull_subscribe_bind(durable=self.durable, stream=self.stream)
                self._subscription = subscription
                log.info("consumer_bound", stream=self.stream, durable=self.durable)
                while True:
                    try:
                        messages = await subscription.fetch(self.policy.batch, timeout=1.0)
                    except (NatsTimeout, TimeoutError):
                        continue
                    if self.batch_handler is not None:
                        await self.handle_batch(messages)
                        continue
                    for message in messages:
                        await self.handle(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker away or a transient error: rebind and go on
                raise_if_cancelling()
                log.warning(
                    "consumer_loop_error", stream=self.stream, error=f"{type(exc).__name__}: {exc}"[:300]
                )
                await asyncio.sleep(1.0)

    async def handle(self, message: Msg) -> None:
        delivered = message.metadata.num_delivered or 1
        try:
            event = CloudEvent.model_validate_json(message.data)
        except ValidationError as exc:
            # A message that can never be parsed will never succeed: park it at once.
            await self._dead_letter(message, None, f"unparseable event: {exc}"[:500])
            return
        handler = self.handlers.get(event.type)
        if handler is None:
            await message.ack()
            return
        with handling(
            f"process {event.type}",
            request_id=event.requestid,
            traceparent=event.traceparent,
            tracestate=event.tracestate,
            attributes={
                "cradle.service": self.service,
                "messaging.system": "nats",
                "messaging.consumer.group.name": self.durable,
                "messaging.message.id": event.id,
            },
            event_id=event.id,
        ):
            await self._handle_parsed(message, event, handler, delivered)

    async def _handle_parsed(self, message: Msg, event: CloudEvent, handler: Handler, delivered: int) -> None:
        log_ctx = {"event_type": event.type, "delivered": delivered}
        try:
            duplicate = await self._handle_once(event, handler)
        except ValidationError as exc:
            # The payload breaks its contract (shared/contracts): no retry will change that.
            error = f"payload breaks the contract of {event.type}: {exc}"[:500]
            log.error("event_dead_lettered", error=error, **log_ctx)
            await self._dead_letter(message, event, error)
            return
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            if delivered >= self.policy.max_deliver:
                log.error("event_dead_lettered", error=error, **log_ctx)
                await self._dead_letter(message, event, error)
                return
            delay = self.policy.backoff_seconds[min(delivered, len(self.policy.backoff_seconds)) - 1]
            log.warning("event_handler_failed", error=error, retry_in_s=delay, **log_ctx)
            self.metrics.events_handled.labels(self.metrics.service, self.durable, "retried").inc()
            with contextlib.suppress(Exception):
                await message.nak(delay=delay)
            return
        outcome = "duplicate" if duplicate else "handled"
        self.metrics.events_handled.labels(self.metrics.service, self.durable, outcome).inc()
        log.info("event_" + outcome, **log_ctx)
        # If this ack is lost the event comes again, and the inbox turns it into a no-op.
        with contextlib.suppress(Exception):
            await message.ack()

    @functools.cached_property
    def _inbox_rows(self) -> RowsInsert:
        return RowsInsert(self.inbox, ("event_id", "event_type"), constants=("consumer", "handled_at"))

    @functools.cached_property
    def _pg_inbox_new(self) -> ReturningInsert[tuple[str]]:
        """A batch's inbox rows, as an executemany (`.values(rows)` is a statement of its own, compiled
        anew, for every batch size), returning the ids it did not hold."""
        return pg_insert(self.inbox).on_conflict_do_nothing().returning(self.inbox.c.event_id)

    async def _handle_once(self, event: CloudEvent, handler: Handler) -> bool:
        """Run the handler unless the inbox already has the event; return True for a repeat."""
        async with writer_turn(self.maker), self.maker() as session, session.begin():
            values = {
                "consumer": self.durable,
                "event_id": event.id,
                "event_type": event.type,
                "handled_at": datetime.now(UTC),
            }
            dialect = session.bind.dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            statement = insert(self.inbox).values(**values).on_conflict_do_nothing()
            result = await session.execute(statement)
            if result.rowcount == 0:
                return True
            await handler(event, session)
            return False

    async def handle_batch(self, messages: Sequence[Msg]) -> None:
        """Runs of first deliveries in one transaction each; a message delivered before, one that
        does not parse and one of a type without a handler alone, in their place (so events about
        one subject keep their order)."""
        run: list[tuple[Msg, CloudEvent]] = []
        for message in messages:
            event = None
            if (message.metadata.num_delivered or 1) == 1:
                with contextlib.suppress(ValidationError):
                    event = CloudEvent.model_validate_json(message.data)
            if event is not None and event.type in self.handlers:
                run.append((message, event))
                continue
            await self._handle_run(run)
            run = []
            await self.handle(message)
        await self._handle_run(run)

    async def _handle_run(self, run: list[tuple[Msg, CloudEvent]]) -> None:
        if not run:
            return
        assert self.batch_handler is not None
        spans = [self._event_span(event) for _, event in run]
        try:
            repeats = await self._handle_together([event for _, event in run], self.batch_handler)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            for span in spans:
                span.set_status(Status(StatusCode.ERROR, error))
                span.end()
            # One by one, each its own transaction: the one that fails is retried or parked alone.
            log.warning("event_batch_failed", error=error, events=len(run))
            for message, _ in run:
                await self.handle(message)
            return
        for span, repeat, (message, event) in zip(spans, repeats, run, strict=True):
            span.end()
            outcome = "duplicate" if repeat else "handled"
            self.metrics.events_handled.labels(self.metrics.service, self.durable, outcome).inc()
            log.info(
                "event_" + outcome,
                event_type=event.type,
                delivered=1,
                event_id=event.id,
                request_id=event.requestid,
                trace_id=tracing.trace_id_of(span),
            )
            with contextlib.suppress(Exception):
                await message.ack()

    async def _handle_together(self, events: list[CloudEvent], batch_handler: BatchHandler) -> list[bool]:
        """The batch handler on the events the inbox did not have; for each event, whether it was a
        repeat (the second copy of an event in the batch is one)."""
        async with writer_turn(self.maker), self.maker() as session, session.begin():
            handled_at = datetime.now(UTC)
            rows = {event.id: (event.id, event.type) for event in events}
            if session.bind.dialect.name == "postgresql":
                returned = await session.execute(
                    self._pg_inbox_new,
                    [
                        {"consumer": self.durable, "event_id": i, "event_type": t, "handled_at": handled_at}
                        for i, t in rows.values()
                    ],
                )
                new = set(returned.scalars())
            else:
                new = await self._inbox_new_on_sqlite(session, rows, handled_at)
            repeats = []
            for event in events:
                repeats.append(event.id not in new)
                new.discard(event.id)
            fresh = [event for event, repeat in zip(events, repeats, strict=True) if not repeat]
            if fresh:
                await batch_handler(fresh, session)
        return repeats

    async def _inbox_new_on_sqlite(
        self, session: AsyncSession, rows: dict[str, tuple[str, str]], handled_at: datetime
    ) -> set[str]:
        """The ids of the events the inbox did not hold, now inserted. No RETURNING on SQLite: each
        row it returns crosses aiosqlite's thread and takes the GIL back from a busy loop (the CCTV
        ingest's finding, bench/README.md). A batch of new events, the common case, is one INSERT;
        one holding a repeat fails whole on its key (SQLite undoes the statement and keeps the
        transaction and its write lock), then the held ids are read and the rest inserted."""
        try:
            await self._inbox_rows.run(
                session, list(rows.values()), consumer=self.durable, handled_at=handled_at
            )
            return set(rows)
        except IntegrityError:
            pass
        held = set(
            (
                await session.execute(
                    select(self.inbox.c.event_id).where(
                        self.inbox.c.consumer == self.durable, self.inbox.c.event_id.in_(rows)
                    )
                )
            ).scalars()
        )
        fresh = [row for event_id, row in rows.items() if event_id not in held]
        await self._inbox_rows.run(session, fresh, consumer=self.durable, handled_at=handled_at)
        return set(rows) - held

    def _event_span(self, event: CloudEvent) -> Span:
        """An event's consumer span in its producer's trace, as `handling` makes one, but not made
        current: the events of a batch are handled together, and each span covers the batch."""
        parent = tracing.context_from(event.traceparent, event.tracestate)
        producer = trace.get_current_span(parent).get_span_context()
        return tracing.tracer.start_span(
            f"process {event.type}",
            context=parent,
            kind=SpanKind.CONSUMER,
            links=[Link(producer)] if producer.is_valid else [],
            attributes={
                "cradle.service": self.service,
                "messaging.system": "nats",
                "messaging.consumer.group.name": self.durable,
                "messaging.message.id": event.id,
                "cradle.request_id": event.requestid or "",
            },
        )

    async def _dead_letter(self, message: Msg, event: CloudEvent | None, error: str) -> None:
        """Park the message, unchanged, with what a replay and an alert need (events/deadletters.py)."""
        js = self.bus.js
        assert js is not None
        subject = self.bus.namespace.dead_letter_subject(self.service, self.durable)
        headers = dead_letter_headers(
            service=self.service,
            consumer=self.durable,
            original_subject=message.subject,
            original_sequence=message.metadata.sequence.stream,
            error=error,
            event_id=event.id if event else None,
            event_type=event.type if event else None,
            facility_id=facility_of(event.data) if event else None,
            at=datetime.now(UTC),
        )
        try:
            await js.publish(subject, message.data, headers=headers, timeout=5)
        except Exception as exc:
            log.warning("dead_letter_publish_failed", error=str(exc)[:200])
            return  # not acked: it comes back and is parked on a later attempt
        self.metrics.events_handled.labels(self.metrics.service, self.durable, "dead_lettered").inc()
        self.metrics.dead_letters.labels(self.metrics.service, self.durable).inc()
        with contextlib.suppress(Exception):
            await message.term()
