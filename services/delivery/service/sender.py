"""The delivery loop. Each replica claims due deliveries by leasing their rows (PostgreSQL: `FOR
UPDATE SKIP LOCKED`, so two replicas never claim one row; SQLite has one writer), sends each as a
Standard Webhooks request signed afresh, and records the attempt. A subscription's events about
one entity (the event's subject) go one at a time, in order; at most `per_subscription_in_flight`
of a subscription's deliveries are out at once and every attempt has a deadline, so a slow or dead
receiver holds back nobody else's."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import ssl
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog
from sqlalchemy import func, literal_column, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from standardwebhooks import Webhook

from services.delivery.config import DeliverySettings
from services.delivery.errors import UnsafeTarget
from services.delivery.models import Delivery, DeliveryAttempt, EventRecord, Subscription
from services.delivery.service.audience import places_by_event, redacted
from services.delivery.service.log import record_event, utcnow
from services.delivery.service.targets import ResolvedTargets, TargetPolicy
from services.delivery.service.webhook_client import WebhookClient, WebhookError, WebhookTimeout
from shared.contracts.delivery import SubscriptionDisabled
from shared.events.consumer import handling
from shared.events.outbox import emit
from shared.identity import Identity

log = structlog.get_logger("cradle.delivery.sender")

CONTENT_TYPE = "application/cloudevents+json"
PENDING = literal_column("'pending'")  # a literal, so the planner may use the pending-only indexes


@dataclass
class Claimed:
    delivery_id: int
    subscription_id: str
    attempt: int
    event_id: str
    event_type: str
    url: str
    secrets: list[str]
    body: str
    # The request that caused the event, and its trace: on every log line of the attempt.
    request_id: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None


@dataclass
class Outcome:
    claimed: Claimed
    attempted_at: datetime
    delivered: bool
    status_code: int | None
    latency_ms: float
    error: str | None
    excerpt: str | None


def signature_header(*, secrets: list[str], event_id: str, at: datetime, body: str) -> str:
    """`v1,<base64>` per secret, space-separated: during a rotation's grace period, both."""
    return " ".join(_signer(secret).sign(event_id, at, body) for secret in secrets)


@functools.lru_cache(maxsize=4096)
def _signer(secret: str) -> Webhook:
    """One per secret: building one decodes the secret's base64."""
    return Webhook(secret)


def _secrets(
    secret: str, previous_secret: str | None, previous_until: datetime | None, now: datetime
) -> list[str]:
    """The subscription's secret, and during a rotation's grace period the previous one too."""
    if previous_secret and previous_until is not None:
        if (previous_until if previous_until.tzinfo else previous_until.replace(tzinfo=UTC)) > now:
            return [secret, previous_secret]
    return [secret]


def backoff_seconds(attempts: int, *, first: float, cap: float) -> float:
    """Exponential, capped, with ±50 % jitter so many failing deliveries do not return together."""
    base = min(cap, first * 2 ** max(attempts - 1, 0))
    return base * random.uniform(0.5, 1.5)


class Sender:
    def __init__(
        self,
        *,
        maker: async_sessionmaker[AsyncSession],
        settings: DeliverySettings,
        lock_rows: bool,
    ) -> None:
        self.maker = maker
        self.settings = settings
        self.lock_rows = lock_rows
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
        self._slots = asyncio.Semaphore(settings.workers)
        self._in_flight: Counter[str] = Counter()
        self._results: asyncio.Queue[Outcome] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._sending: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="delivery-claims"),
            asyncio.create_task(self._record_loop(), name="delivery-results"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._sending]:
            task.cancel()
        for task in [*self._tasks, *self._sending]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)
        # Leases of unfinished attempts lapse on their own; what was sent and not recorded is sent
        # again (at least once).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._write(self._drain_results()), 5)
        self.client.close()

    # --- claiming ---------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while True:
            try:
                claimed = await self.claim()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away: try again shortly
                log.warning("delivery_claim_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                claimed = []
                await asyncio.sleep(self.settings.poll_seconds)
            for item in claimed:
                await self._slots.acquire()
                task = asyncio.create_task(self._send_and_queue(item))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
            self.client.sweep()
            if claimed:
                continue  # more may be due at once
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)

    async def claim(self) -> list[Claimed]:
        """Lease due deliveries: the oldest undelivered of each (subscription, subject), of enabled
        subscriptions, no more per subscription than it may have in flight."""
        now = utcnow()
        limit = self.settings.per_subscription_in_flight
        async with self.maker() as session, session.begin():
            busy = dict(
                (
                    await session.execute(
                        select(Delivery.subscription_id, func.count())
                        .where(Delivery.status == PENDING, Delivery.lease_until > now)
                        .group_by(Delivery.subscription_id)
                    )
                ).all()
            )
            full = [subscription for subscription, count in busy.items() if count >= limit]
            lateral = session.get_bind().dialect.name == "postgresql"
            candidates = await self._candidates(session, now, full, lateral=lateral)
            room = {subscription: limit - busy.get(subscription, 0) for _, subscription in candidates}
            ids = []
            for delivery_id, subscription in candidates:
                if room[subscription] > 0:
                    room[subscription] -= 1
                    ids.append(delivery_id)
            if not ids:
                return []
            lock = select(Delivery.id).where(
                Delivery.id.in_(ids),
                Delivery.status == PENDING,
                or_(Delivery.lease_until.is_(None), Delivery.lease_until <= now),
            )
            if self.lock_rows:
                lock = lock.with_for_update(skip_locked=True)
            ids = list((await session.execute(lock)).scalars())
            if not ids:
                return []
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_(ids))
                .values(
                    lease_until=now + timedelta(seconds=self.settings.lease_seconds),
                    leased_by=self.worker_id,
                    attempts=Delivery.attempts + 1,
                )
            )
            rows = (
                await session.execute(
                    select(
                        Delivery.id,
                        Delivery.attempts,
                        Delivery.event_seq,
                        Subscription.id.label("subscription_id"),
                        Subscription.identity,
                        Subscription.url,
                        Subscription.secret,
                        Subscription.previous_secret,
                        Subscription.previous_secret_until,
                        EventRecord.body,
                    )
                    .join(Subscription, Subscription.id == Delivery.subscription_id)
                    .join(EventRecord, EventRecord.seq == Delivery.event_seq)
                    .where(Delivery.id.in_(ids))
                    .order_by(Delivery.id)
                )
            ).all()
            places = await places_by_event(session, list({r.event_seq for r in rows}))
        # An event fans out to many subscriptions in one claim: parse it once, and build each
        # redaction once (one for every reader who sees the whole city, one per other reader).
        readers: dict[str, Identity] = {}
        originals: dict[int, dict[str, Any]] = {}
        bodies: dict[tuple[int, str | None], str] = {}
        claimed = []
        for row in rows:
            reader = readers.get(row.subscription_id)
            if reader is None:
                reader = readers[row.subscription_id] = Identity.model_validate(row.identity)
            original = originals.get(row.event_seq)
            if original is None:
                original = originals[row.event_seq] = json.loads(row.body)
            key = (row.event_seq, None if reader.sees_whole_city() else row.subscription_id)
            sent = bodies.get(key)
            if sent is None:
                event = redacted(reader, original, places[row.event_seq])
                sent = bodies[key] = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
            claimed.append(
                Claimed(
                    delivery_id=row.id,
                    subscription_id=row.subscription_id,
                    attempt=row.attempts,
                    event_id=str(original["id"]),
                    event_type=str(original["type"]),
                    url=row.url,
                    secrets=_secrets(row.secret, row.previous_secret, row.previous_secret_until, now),
                    body=sent,
                    request_id=original.get("requestid"),
                    traceparent=original.get("traceparent"),
                    tracestate=original.get("tracestate"),
                )
            )
        return claimed

    async def _candidates(
        self, session: AsyncSession, now: datetime, full: list[str], *, lateral: bool
    ) -> list[tuple[int, str]]:
        """Per enabled subscription with room, its oldest due deliveries that head their subject
        (no earlier one of the subject still pending), at most as many as it may have in flight:
        a walk of the pending-only index per subscription, however long the backlog."""
        due, earlier = aliased(Delivery, name="due"), aliased(Delivery, name="earlier")
        heads = (
            select(due.id, due.subscription_id)
            .where(
                due.subscription_id == Subscription.id,
                due.status == PENDING,
                due.next_attempt_at <= now,
                or_(due.lease_until.is_(None), due.lease_until <= now),
                # The subject's oldest pending one. A scalar subquery, never an anti-join: it is
                # one probe of the index per row whatever the planner's statistics say (PostgreSQL
                # turned NOT EXISTS into a join that read the whole subscription's pending rows).
                due.id
                == select(func.min(earlier.id))
                .where(
                    earlier.subscription_id == due.subscription_id,
                    earlier.order_key == due.order_key,
                    earlier.status == PENDING,
                )
                .scalar_subquery(),
            )
            .order_by(due.next_attempt_at, due.id)
            .limit(self.settings.per_subscription_in_flight)
        )
        with_room = [Subscription.enabled.is_(True)]
        if full:
            with_room.append(Subscription.id.not_in(full))
        if lateral:
            joined = heads.lateral("heads")
            rows = await session.execute(
                select(joined.c.id, joined.c.subscription_id)
                .select_from(Subscription)
                .join(joined, true())
                .where(*with_room)
                .order_by(joined.c.id)
                .limit(self.settings.claim_batch)
            )
            return [(delivery_id, subscription_id) for delivery_id, subscription_id in rows]
        # SQLite has no LATERAL, and given a join it scans the deliveries first: one row per
        # subscription instead, its heads gathered into a JSON array.
        found = heads.correlate(Subscription).subquery("heads")
        rows = await session.execute(
            select(Subscription.id, select(func.json_group_array(found.c.id)).scalar_subquery()).where(
                *with_room
            )
        )
        gathered = sorted(
            (delivery_id, subscription_id) for subscription_id, ids in rows for delivery_id in json.loads(ids)
        )
        return gathered[: self.settings.claim_batch]

    # --- sending ----------------------------------------------------------------------------------

    async def _send_and_queue(self, claimed: Claimed) -> None:
        self._in_flight[claimed.subscription_id] += 1
        try:
            with _attempt_context(claimed, "send webhook"):
                outcome = await self.send(claimed)
            await self._results.put(outcome)
        finally:
            self._in_flight[claimed.subscription_id] -= 1
            self._slots.release()

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
            target = await self.targets.resolve(claimed.url)
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
                claimed.body.encode(),
                timeout=self.settings.attempt_timeout_seconds,
            )
            status = reply.status
            excerpt = reply.excerpt.decode("utf-8", errors="replace") if reply.excerpt else None
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
            error=error[:500] if error else None,
            excerpt=excerpt,
        )

    # --- recording --------------------------------------------------------------------------------

    def _drain_results(self) -> list[Outcome]:
        drained = []
        while not self._results.empty():
            drained.append(self._results.get_nowait())
        return drained

    async def _record_loop(self) -> None:
        while True:
            first = await self._results.get()
            await asyncio.sleep(0.005)  # gather the attempts finishing together into one write
            batch = [first, *self._drain_results()]
            while True:
                try:
                    await self._write(batch)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database away: keep the outcomes, try again
                    log.warning("delivery_record_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                    await asyncio.sleep(1.0)
            self.wake()  # the next event of a subject may be due now

    async def _write(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        now = utcnow()
        async with self.maker() as session, session.begin():
            await session.execute(
                DeliveryAttempt.__table__.insert(),
                [
                    {
                        "delivery_id": o.claimed.delivery_id,
                        "subscription_id": o.claimed.subscription_id,
                        "event_id": o.claimed.event_id,
                        "event_type": o.claimed.event_type,
                        "attempt": o.claimed.attempt,
                        "attempted_at": o.attempted_at,
                        "status_code": o.status_code,
                        "latency_ms": o.latency_ms,
                        "outcome": "delivered" if o.delivered else "failed",
                        "error": o.error,
                        "response_excerpt": o.excerpt,
                    }
                    for o in outcomes
                ],
            )
            delivered = [o.claimed.delivery_id for o in outcomes if o.delivered]
            if delivered:
                await session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(delivered), Delivery.leased_by == self.worker_id)
                    .values(status="delivered", delivered_at=now, lease_until=None, leased_by=None)
                )
            for outcome in outcomes:
                if outcome.delivered:
                    continue
                delay = backoff_seconds(
                    outcome.claimed.attempt,
                    first=self.settings.retry_first_seconds,
                    cap=self.settings.retry_max_seconds,
                )
                await session.execute(
                    update(Delivery)
                    .where(Delivery.id == outcome.claimed.delivery_id, Delivery.leased_by == self.worker_id)
                    .values(next_attempt_at=now + timedelta(seconds=delay), lease_until=None, leased_by=None)
                )
            succeeded = {o.claimed.subscription_id for o in outcomes if o.delivered}
            failed = {o.claimed.subscription_id for o in outcomes if not o.delivered} - succeeded
            if succeeded:
                await session.execute(
                    update(Subscription)
                    .where(Subscription.id.in_(succeeded), Subscription.failing_since.is_not(None))
                    .values(failing_since=None)
                )
            if failed:
                await session.execute(
                    update(Subscription)
                    .where(Subscription.id.in_(failed), Subscription.failing_since.is_(None))
                    .values(failing_since=now)
                )
                last_failed = {o.claimed.subscription_id: o.claimed for o in outcomes if not o.delivered}
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


def _attempt_context(claimed: Claimed, name: str) -> Any:
    return handling(
        name,
        request_id=claimed.request_id,
        traceparent=claimed.traceparent,
        tracestate=claimed.tracestate,
        attributes={"cradle.service": "delivery", "messaging.message.id": claimed.event_id},
        event_id=claimed.event_id,
    )
