"""The delivery loop. Each round, in one transaction, records the attempts that finished since
the last one and claims what is due next (service/claims.py: leases, at most
`per_subscription_leased` per subscription, a subject's events one at a time, in order). A claimed
delivery waits in its subscription's queue in this process until one of the subscription's
`per_subscription_in_flight` slots is free, and is then sent as a Standard Webhooks request signed
afresh: a finished attempt's slot goes at once to the next one already leased, without waiting for
a round, so the rounds (one after another) no longer bound the rate. Recording and claiming
together make one round trip: a subscription's next deliveries are leased in the transaction that
releases the last ones'. Every attempt has a deadline, so a slow or dead receiver holds back nobody
else's; one whose lease would lapse before its deadline is not sent (another replica may claim it
then), its lease lapses and it is claimed again."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import random
import ssl
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind
from sqlalchemy import BigInteger, bindparam, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from services.delivery.config import DeliverySettings
from services.delivery.errors import UnsafeTarget
from services.delivery.events import SubscriptionDisabled
from services.delivery.models import Delivery, DeliveryAttempt, DeliveryLease, Subscription
from services.delivery.service import sqlite_round
from services.delivery.service.claims import Claimed, claim, ready
from services.delivery.service.log import SUBSCRIPTIONS_HELD, record_event
from services.delivery.service.subscriptions import SECRET_PREFIX
from services.delivery.service.targets import ResolvedTargets, TargetPolicy
from services.delivery.service.webhook_client import WebhookClient, WebhookError, WebhookTimeout
from shared import tracing
from shared.bounded import raise_if_cancelling, settle, stop_task
from shared.clock import utcnow
from shared.db import sqlite_time, writer_turn
from shared.events.consumer import handling
from shared.events.outbox import emit
from shared.rows import RowsInsert, one_of
from shared.sqlite_driver import on_connection_thread

log = structlog.get_logger("cradle.delivery.sender")

CONTENT_TYPE = "application/cloudevents+json"
DELIVERIES = Delivery.__table__
LEASES = DeliveryLease.__table__
# Statements of every round, built once (building costs more than running them); a list is one
# parameter (`one_of`: one statement, prepared once, whatever its length).
# The deliveries whose leases this replica holds (another may have taken a lapsed one over since).
_HELD = select(LEASES.c.delivery_id).where(
    one_of(LEASES.c.delivery_id, "done_ids", BigInteger()), LEASES.c.leased_by == bindparam("worker")
)
_LEASED_ATTEMPT = select(LEASES.c.attempt).where(LEASES.c.delivery_id == DELIVERIES.c.id).scalar_subquery()
DONE = (
    update(DELIVERIES)
    .where(DELIVERIES.c.id.in_(_HELD))
    .values(status="delivered", delivered_at=bindparam("at"), attempts=_LEASED_ATTEMPT)
)
# A failed attempt's delivery, back to pending at its own retry time (one statement for all).
RETRY_LATER = (
    update(DELIVERIES)
    .where(
        DELIVERIES.c.id == bindparam("failed_id"),
        exists().where(
            LEASES.c.delivery_id == bindparam("failed_id"), LEASES.c.leased_by == bindparam("worker")
        ),
    )
    .values(next_attempt_at=bindparam("retry_at"), attempts=_LEASED_ATTEMPT)
)
# The leases of what was recorded, ended; at a stop, those of what was claimed and never sent,
# given back (their attempt not made, so not counted).
END_LEASES = delete(LEASES).where(
    one_of(LEASES.c.delivery_id, "ended_ids", BigInteger()), LEASES.c.leased_by == bindparam("worker")
)

RECORD_ATTEMPTS = RowsInsert(
    DeliveryAttempt.__table__,
    (
        "delivery_id",
        "subscription_id",
        "event_id",
        "event_type",
        "attempt",
        "attempted_at",
        "status_code",
        "latency_ms",
        "outcome",
        "error",
        "response_excerpt",
    ),
)


@dataclass(slots=True)
class Outcome:
    claimed: Claimed
    attempted_at: datetime
    delivered: bool
    status_code: int | None
    latency_ms: float
    error: str | None
    excerpt: str | None


def signature_header(*, secrets: list[str], event_id: str, at: datetime, body: bytes) -> str:
    """`v1,<base64>` per secret, space-separated: during a rotation's grace period, both. The
    Standard Webhooks signature (HMAC-SHA256 of `<id>.<unix seconds>.<body>`), as `standardwebhooks`
    makes it, from a copy of the secret's keyed HMAC: the key is hashed once, not every attempt, and
    the GIL stays held for a body this small (the one-shot `hmac.digest` lets it go, and getting it
    back from the database threads cost the sender 5 µs an attempt, and up to a switch interval)."""
    signed = f"{event_id}.{int(at.timestamp())}.".encode() + body
    signatures = []
    for secret in secrets:
        mac = _keyed(secret).copy()
        mac.update(signed)
        signatures.append("v1," + base64.b64encode(mac.digest()).decode())
    return " ".join(signatures)


@functools.lru_cache(maxsize=4096)
def _keyed(secret: str) -> hmac.HMAC:
    """A `whsec_` secret's HMAC-SHA256, keyed once (its key is unpadded base64, as `standardwebhooks`
    reads it); only ever copied, never updated itself."""
    return hmac.new(base64.b64decode(secret.removeprefix(SECRET_PREFIX) + "=="), digestmod=hashlib.sha256)


def _text(received: str) -> str:
    """A receiver's text as it can be stored: PostgreSQL's text (and SQLite's JSON functions) end a
    string at NUL, so a NUL is the replacement character, as an undecodable byte is."""
    return received.replace("\x00", "\ufffd")


def backoff_seconds(attempts: int, *, first: float, cap: float) -> float:
    """Exponential, capped, with ±50 % jitter so many failing deliveries do not return together."""
    base = min(cap, first * 2 ** max(attempts - 1, 0))
    return base * random.uniform(0.5, 1.5)


class Sender:
    def __init__(
        self,
        *,
        maker: async_sessionmaker[AsyncSession],
        engine: AsyncEngine,
        settings: DeliverySettings,
    ) -> None:
        self.maker = maker
        self.engine = engine
        self.settings = settings
        self.policy = TargetPolicy.of(
            allow_http_loopback=settings.allow_http_loopback, allowed_networks=settings.allowed_networks
        )
        self.worker_id = f"{settings.service_name}-{uuid.uuid4().hex[:12]}"
        self.targets = ResolvedTargets(self.policy)
        self.client = WebhookClient(
            tls=ssl.create_default_context(),  # one for all: loading the CAs costs ~0.1 s a time
            max_idle=settings.per_subscription_in_flight,
            connect_timeout=settings.connect_timeout_seconds,
        )
        self._wake = asyncio.Event()
        self._due: asyncio.Queue[Claimed] = asyncio.Queue()  # claimed and with a slot, for the next worker
        # Claimed, per subscription, waiting for one of its slots; and its attempts under way.
        self._held: dict[str, deque[Claimed]] = {}
        self._leased_limit = max(settings.per_subscription_leased, settings.per_subscription_in_flight)
        self._in_flight: dict[str, int] = {}
        self._results: list[Outcome] = []  # finished attempts, recorded by the next round
        self._more_due = False  # the last claim's batch was full: claim again at once
        self._send_by: dict[datetime, float] = {}  # a lease time, as the monotonic time to send by
        self._task: asyncio.Task[None] | None = None
        self._workers: list[asyncio.Task[None]] = []
        # Held from round to round: a connection taken from the pool each round is pinged first
        # (PostgreSQL: three round trips, a third of a round's). Dropped after a failed round.
        self._connection: AsyncConnection | None = None
        # PostgreSQL: recording runs beside claiming, on a connection of its own (each round of one
        # was a third to a half of a round of both, one after the other). SQLite has one writer.
        self._split = engine.dialect.name == "postgresql"
        # SQLite: a round's statements in one trip to the database's thread (service/sqlite_round.py).
        self._one_trip = engine.dialect.name == "sqlite"
        self._finished = asyncio.Event()  # an attempt finished: the recorder has work
        self._recorder: asyncio.Task[None] | None = None
        self._record_connection: AsyncConnection | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="delivery-sender")
        if self._split:
            self._recorder = asyncio.create_task(self._record_loop(), name="delivery-recorder")
        self.start_workers()

    def start_workers(self) -> None:
        # `workers` attempts in flight at most, each worker one at a time (a task per attempt cost
        # 13 µs more an attempt than a worker taking the next from the queue).
        self._workers = [
            asyncio.create_task(self._work(), name=f"delivery-sender-worker-{index}")
            for index in range(self.settings.workers)
        ]

    async def stop(self) -> None:
        tasks = [task for task in (self._task, self._recorder) if task is not None] + self._workers
        for task in tasks:
            task.cancel()
        stopped = [await stop_task("delivery sender", task, seconds=5) for task in tasks]
        # Leases of unfinished attempts lapse on their own; what was sent and not recorded is sent
        # again (at least once). What was leased and never sent is given back by the last round, so
        # another replica sends it now rather than once its lease lapses. A loop left behind may
        # still hold the round's connection: no last round beside it.
        if all(stopped):
            await settle("delivery outcomes", self.round(claiming=False), seconds=5)
            await self._release_connection()
            await self._release_record_connection()
        self.client.close()

    # --- the loop ---------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                claimed = await self.round(recording=not self._split)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away: the outcomes are kept, try again shortly
                raise_if_cancelling()
                log.warning("delivery_round_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(self.settings.poll_seconds)
                continue
            for item in claimed:  # the workers send them; the loop goes on recording and claiming
                self._held.setdefault(item.subscription_id, deque()).append(item)
            for subscription_id in {item.subscription_id for item in claimed}:
                self._dispatch(subscription_id)
            self.client.sweep()
            # The batch cut the candidates short: more may be due at once. Else all that was due is
            # claimed, and only a recording (what finished frees slots), new events or the poll bring
            # more; a round at once would claim nothing for its two queries (a sixth of them did).
            if self._more_due or (self._results and not self._split):
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)

    async def _record_loop(self) -> None:
        """PostgreSQL: what finished, recorded as it finishes, beside the claims (whatever finished
        during one recording is the next one's batch); each recording wakes the claims, as it frees
        leases and makes the next event of a subject due."""
        while True:
            self._finished.clear()
            if not self._results:
                await self._finished.wait()
                continue
            try:
                await self._record_round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away: the outcomes are kept, try again shortly
                raise_if_cancelling()
                log.warning("delivery_recording_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(self.settings.poll_seconds)
                continue
            self._wake.set()

    async def _record_round(self) -> None:
        finished = list(self._results)
        now = utcnow()
        if self._record_connection is None:
            self._record_connection = await self.engine.connect()
        try:
            async with self.maker(bind=self._record_connection) as session, session.begin():
                await self._record(session, finished, now)
        except BaseException:
            await self._release_record_connection()
            raise
        del self._results[: len(finished)]

    async def _release_record_connection(self) -> None:
        connection, self._record_connection = self._record_connection, None
        if connection is not None:
            await settle("delivery recording connection", connection.close(), seconds=5)

    async def round(self, *, claiming: bool = True, recording: bool = True) -> list[Claimed]:
        """Record what finished (unless a recorder does, beside), then claim what is due, in one
        transaction. Outcomes are taken only once it commits: if it fails, the next round records
        them."""
        finished = list(self._results) if recording else []
        now = utcnow()
        if self._connection is None:
            self._connection = await self.engine.connect()
        try:
            async with writer_turn(self.maker):
                claimed = await self._round(self._connection, finished, now, claiming=claiming)
        except BaseException:
            await self._release_connection()  # it may be the connection that failed: a fresh one next
            raise
        del self._results[: len(finished)]
        return claimed

    async def _round(
        self, connection: AsyncConnection, finished: list[Outcome], now: datetime, *, claiming: bool
    ) -> list[Claimed]:
        async with self.maker(bind=connection) as session, session.begin():
            if claiming and self._one_trip:
                return await self._round_in_one_trip(session, finished, now)
            if finished:
                await self._record(session, finished, now)
            unsent = [] if claiming else self._unsent()
            if unsent:
                await session.execute(END_LEASES, {"ended_ids": unsent, "worker": self.worker_id})
            claimed, self._more_due = (
                await claim(
                    session,
                    now=now,
                    limit=self._leased_limit,
                    batch=self.settings.claim_batch,
                    lease_seconds=self.settings.lease_seconds,
                    worker_id=self.worker_id,
                )
                if claiming
                else ([], False)
            )
        return claimed

    async def _round_in_one_trip(
        self, session: AsyncSession, finished: list[Outcome], now: datetime
    ) -> list[Claimed]:
        """SQLite: the attempts recorded and the next deliveries leased by one call on the database's
        thread (service/sqlite_round.py), after what a round seldom has to do (a subscription failing
        or recovered); then the claimed deliveries made ready to send."""
        until = now + timedelta(seconds=self.settings.lease_seconds)
        work = sqlite_round.Round(
            worker=self.worker_id,
            now=sqlite_time(now),
            until=sqlite_time(until),
            limit=self._leased_limit,
            batch=self.settings.claim_batch,
        )
        if finished:
            attempts, work.delivered, retries = self._outcome_rows(finished, now)
            dialect = session.get_bind().dialect
            work.attempts = (
                RECORD_ATTEMPTS.sqlite_statement(),
                RECORD_ATTEMPTS.sqlite_parameters(dialect, attempts),
            )
            work.retries = [{**retry, "retry_at": sqlite_time(retry["retry_at"])} for retry in retries]
            work.subscriptions = sorted({o.claimed.subscription_id for o in finished})
            # First, as `_record` does: a subscription disabled now is not claimed for below.
            await self._record_subscriptions(session, finished, now)
        connection = await session.connection()
        rows, self._more_due = await on_connection_thread(
            connection, functools.partial(sqlite_round.run, work=work)
        )
        return await ready(session, rows, now, until) if rows else []

    def _unsent(self) -> list[int]:
        """What this process leased and no worker has taken: held for a slot, or queued."""
        queued = [self._due.get_nowait() for _ in range(self._due.qsize())]
        for item in queued:
            self._due.put_nowait(item)  # taken only once the round commits (it may fail)
        return [item.delivery_id for item in queued] + [
            item.delivery_id for held in self._held.values() for item in held
        ]

    async def _release_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await settle("delivery connection", connection.close(), seconds=5)

    # --- sending ----------------------------------------------------------------------------------

    def _dispatch(self, subscription_id: str) -> None:
        """The subscription's next held deliveries to the workers, while it has a free slot."""
        held = self._held.get(subscription_id)
        if held is None:
            return
        room = self.settings.per_subscription_in_flight - self._in_flight.get(subscription_id, 0)
        while held and room > 0:
            self._due.put_nowait(held.popleft())
            room -= 1
        self._in_flight[subscription_id] = self.settings.per_subscription_in_flight - room
        if not held:
            del self._held[subscription_id]

    async def _work(self) -> None:
        while True:
            claimed = await self._due.get()
            subscription_id = claimed.subscription_id
            try:
                outcome = await self._attempt(claimed) if self._in_time(claimed) else None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug, not a receiver's failure: its lease lapses, it comes again
                log.error("delivery_attempt_crashed", error=f"{type(exc).__name__}: {exc}"[:300])
                outcome = None
            finally:
                left = self._in_flight.get(subscription_id, 1) - 1
                if left > 0:
                    self._in_flight[subscription_id] = left
                else:
                    self._in_flight.pop(subscription_id, None)
            self._dispatch(subscription_id)  # its slot, to the next delivery it holds
            if outcome is not None:
                self._results.append(outcome)
                # Its lease is released, and the next of its subject due, once recorded.
                (self._finished if self._split else self._wake).set()

    def _in_time(self, claimed: Claimed) -> bool:
        """Whether the attempt ends, at its deadline, before its lease lapses. If not, it is not sent:
        once lapsed, another replica may claim the delivery and send it too. (A round's leases end
        together: the clock time is turned into the monotonic clock's once a lease time, not once
        an attempt.)"""
        until = claimed.lease_until
        if until is None:
            return True
        send_by = self._send_by.get(until)
        if send_by is None:
            if len(self._send_by) >= 64:
                self._send_by.clear()
            margin = (until - utcnow()).total_seconds() - self.settings.attempt_timeout_seconds
            send_by = self._send_by[until] = time.monotonic() + margin
        return time.monotonic() < send_by

    async def _attempt(self, claimed: Claimed) -> Outcome:
        parent = tracing.context_from(claimed.traceparent, claimed.tracestate)
        # Not made at all when it would not be recorded: a fifth of an attempt's own CPU.
        span = _attempt_span(claimed, parent) if tracing.may_record(parent) else None
        try:
            outcome = await self.send(claimed)
            if outcome.status_code is not None and span is not None and span.is_recording():
                span.set_attribute("http.response.status_code", outcome.status_code)
        finally:
            if span is not None:
                span.end()
        return outcome

    async def send(self, claimed: Claimed) -> Outcome:
        """One attempt, signed now (a retry is a new signature with its own timestamp), to the
        address checked (at most a few seconds ago), within the attempt's deadline from connect to
        the reply's first KiB. A redirect is an answer like any other non-2xx: never followed, as it
        could point anywhere, past the address check."""
        attempted_at = utcnow()
        started = time.perf_counter()
        status: int | None = None
        excerpt: str | None = None
        error: str | None = None
        try:
            target = self.targets.known(claimed.url) or await self.targets.resolve(claimed.url)
            headers = [
                ("content-type", CONTENT_TYPE),
                ("user-agent", "Cradle-Webhooks/1"),
                ("webhook-id", claimed.event_id),
                ("webhook-timestamp", str(int(attempted_at.timestamp()))),
                (
                    "webhook-signature",
                    signature_header(
                        secrets=claimed.secrets, event_id=claimed.event_id, at=attempted_at, body=claimed.body
                    ),
                ),
            ]
            reply = await self.client.post(
                claimed.subscription_id,
                target,
                headers,
                claimed.body,
                timeout=self.settings.attempt_timeout_seconds,
            )
            status = reply.status
            excerpt = _text(reply.excerpt.decode("utf-8", errors="replace")) if reply.excerpt else None
        except UnsafeTarget as exc:
            error = f"refused: {exc.detail}"
        except WebhookTimeout:
            error = f"no answer within {self.settings.attempt_timeout_seconds:g} s"
        except WebhookError as exc:
            error = str(exc)
        latency_ms = (time.perf_counter() - started) * 1000
        delivered = status is not None and 200 <= status < 300
        if status is not None and not delivered:
            error = f"HTTP {status}"
        return Outcome(
            claimed=claimed,
            attempted_at=attempted_at,
            delivered=delivered,
            status_code=status,
            latency_ms=round(latency_ms, 3),
            error=_text(error[:500]) if error else None,
            excerpt=excerpt,
        )

    # --- recording --------------------------------------------------------------------------------

    async def _record(self, session: AsyncSession, outcomes: list[Outcome], now: datetime) -> None:
        subscriptions = sorted({o.claimed.subscription_id for o in outcomes})
        # Held against their deletion until the attempts are recorded; one deleted meanwhile has none.
        held = await session.execute(SUBSCRIPTIONS_HELD, {"subscription_ids": subscriptions})
        present = set(held.scalars())
        if len(present) < len(subscriptions):  # deleted since these were claimed: nothing to record
            outcomes = [o for o in outcomes if o.claimed.subscription_id in present]
            if not outcomes:
                return
        attempts, delivered, retries = self._outcome_rows(outcomes, now)
        await RECORD_ATTEMPTS.run(session, attempts)
        if delivered:
            await session.execute(DONE, {"done_ids": delivered, "worker": self.worker_id, "at": now})
        if retries:
            await session.execute(RETRY_LATER, retries)
        ended = [o.claimed.delivery_id for o in outcomes]
        await session.execute(END_LEASES, {"ended_ids": ended, "worker": self.worker_id})
        await self._record_subscriptions(session, outcomes, now)

    def _outcome_rows(
        self, outcomes: list[Outcome], now: datetime
    ) -> tuple[list[tuple[Any, ...]], list[int], list[dict[str, Any]]]:
        """The attempts' rows (RECORD_ATTEMPTS), the deliveries delivered (DONE) and those to retry,
        each at its own time (RETRY_LATER's parameters)."""
        attempts = [
            (
                o.claimed.delivery_id,
                o.claimed.subscription_id,
                o.claimed.event_id,
                o.claimed.event_type,
                o.claimed.attempt,
                o.attempted_at,
                o.status_code,
                o.latency_ms,
                "delivered" if o.delivered else "failed",
                o.error,
                o.excerpt,
            )
            for o in outcomes
        ]
        delivered = [o.claimed.delivery_id for o in outcomes if o.delivered]
        retries = [
            {
                "failed_id": o.claimed.delivery_id,
                "worker": self.worker_id,
                "retry_at": now
                + timedelta(
                    seconds=backoff_seconds(
                        o.claimed.attempt,
                        first=self.settings.retry_first_seconds,
                        cap=self.settings.retry_max_seconds,
                    )
                ),
            }
            for o in outcomes
            if not o.delivered
        ]
        return attempts, delivered, retries

    async def _record_subscriptions(
        self, session: AsyncSession, outcomes: list[Outcome], now: datetime
    ) -> None:
        """A subscription that failed is marked failing (and disabled after long enough), one that
        succeeded again is not."""
        failures = [o for o in outcomes if not o.delivered]
        succeeded = {o.claimed.subscription_id for o in outcomes if o.delivered}
        # Only those that were failing when claimed (one more statement per round otherwise); one
        # that began failing since is cleared by its next success.
        recovered = {o.claimed.subscription_id for o in outcomes if o.delivered and o.claimed.failing}
        failed = {o.claimed.subscription_id for o in failures} - succeeded
        if recovered:
            await session.execute(
                update(Subscription)
                .where(Subscription.id.in_(recovered), Subscription.failing_since.is_not(None))
                .values(failing_since=None)
            )
        if failed:
            await session.execute(
                update(Subscription)
                .where(Subscription.id.in_(failed), Subscription.failing_since.is_(None))
                .values(failing_since=now)
            )
            last_failed = {o.claimed.subscription_id: o.claimed for o in failures}
            await self._disable_long_failing(session, {i: last_failed[i] for i in failed}, now)

    async def _disable_long_failing(
        self, session: AsyncSession, last_failed: dict[str, Claimed], now: datetime
    ) -> None:
        """Off after `disable_after_seconds` of nothing but failures; the owner is told by an event
        (its own feed and webhooks, and monitoring's alert)."""
        cutoff = now - timedelta(seconds=self.settings.disable_after_seconds)
        doomed = (
            await session.execute(
                select(Subscription)
                .where(
                    Subscription.id.in_(last_failed),
                    Subscription.enabled.is_(True),
                    Subscription.failing_since <= cutoff,
                )
                .with_for_update()
            )
        ).scalars()
        for subscription in list(doomed):
            # Its last failed attempt's event: the disabling, its event and its log line go on that
            # request's id and trace.
            with _attempt_context(last_failed[subscription.id], "disable subscription"):
                pending = (
                    await session.execute(
                        select(func.count())
                        .select_from(Delivery)
                        .where(Delivery.subscription_id == subscription.id, Delivery.status == "pending")
                    )
                ).scalar_one()
                subscription.enabled = False
                subscription.disabled_at = now
                subscription.disabled_reason = (
                    f"every delivery failed since {subscription.failing_since:%Y-%m-%d %H:%M} UTC"
                )
                subscription.updated_at = now
                failing_since = subscription.failing_since
                assert failing_since is not None
                envelope = await emit(
                    session,
                    SubscriptionDisabled(
                        subscription_id=subscription.id,
                        client_id=subscription.client_id,
                        url_host=urlsplit(subscription.url).hostname or "?",
                        failing_since=failing_since,
                        pending_deliveries=pending,
                        disabled_at=now,
                    ),
                )
                await session.flush()
                await record_event(session=session, event=envelope)
                log.warning(
                    "subscription_disabled", subscription_id=subscription.id, client_id=subscription.client_id
                )


def _attempt_span(claimed: Claimed, parent: Context) -> Span:
    """The attempt's consumer span, in the event's trace and linked to its producer (as
    `handling` makes one), but not made current and with no log context bound: an attempt logs
    nothing and starts no child span, and those two cost thrice the span itself, per delivery."""
    producer = trace.get_current_span(parent).get_span_context()
    return tracing.tracer.start_span(
        "send webhook",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=[Link(producer)] if producer.is_valid else [],
        attributes={
            "cradle.service": "delivery",
            "messaging.message.id": claimed.event_id,
            "cradle.request_id": claimed.request_id or "",
        },
    )


def _attempt_context(claimed: Claimed, name: str) -> Any:
    return handling(
        name,
        request_id=claimed.request_id,
        traceparent=claimed.traceparent,
        tracestate=claimed.tracestate,
        attributes={"cradle.service": "delivery", "messaging.message.id": claimed.event_id},
        event_id=claimed.event_id,
    )
