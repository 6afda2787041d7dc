"""The delivery loop. Each replica claims due deliveries by leasing their rows (PostgreSQL: `FOR
UPDATE SKIP LOCKED`, so two replicas never claim one row; SQLite has one writer), sends each as a
Standard Webhooks request signed afresh, and records the attempt. A subscription's events about
one entity (the event's subject) go one at a time, in order; at most `per_subscription_in_flight`
of a subscription's deliveries are out at once and every attempt has a deadline, so a slow or dead
receiver holds back nobody else's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import time
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from standardwebhooks import Webhook

from services.delivery.config import DeliverySettings
from services.delivery.errors import UnsafeTarget
from services.delivery.models import Delivery, DeliveryAttempt, EventRecord, Subscription
from services.delivery.service.audience import places_by_event, redacted
from services.delivery.service.log import record_event, utcnow
from services.delivery.service.targets import TargetPolicy, resolve
from shared.contracts.delivery import SubscriptionDisabled
from shared.events.consumer import handling
from shared.events.outbox import emit
from shared.identity import Identity

log = structlog.get_logger("cradle.delivery.sender")

EXCERPT_BYTES = 1024
MAX_CLIENTS = 2000  # kept-alive pools, one per subscription recently sent to
CONTENT_TYPE = "application/cloudevents+json"


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
    return " ".join(Webhook(secret).sign(event_id, at, body) for secret in secrets)


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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.maker = maker
        self.settings = settings
        self.lock_rows = lock_rows
        self.policy = TargetPolicy.of(
            allow_http_loopback=settings.allow_http_loopback, allowed_networks=settings.allowed_networks
        )
        self.worker_id = f"{settings.service_name}-{uuid.uuid4().hex[:12]}"
        self.transport = transport
        # A small pool per subscription: one receiver's connections never queue another's requests,
        # and httpx's pool scan (per request, over its connections) stays short.
        self._clients: OrderedDict[str, httpx.AsyncClient] = OrderedDict()
        self._tls = ssl.create_default_context()  # built once: loading the CAs costs ~0.1 s a time
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
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.aclose(), 5)
        self._clients.clear()

    def _client(self, subscription_id: str) -> httpx.AsyncClient:
        client = self._clients.get(subscription_id)
        if client is not None:
            self._clients.move_to_end(subscription_id)
            return client
        if len(self._clients) >= MAX_CLIENTS:
            _, oldest = self._clients.popitem(last=False)
            task = asyncio.create_task(oldest.aclose())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        in_flight = self.settings.per_subscription_in_flight
        client = httpx.AsyncClient(
            transport=self.transport,
            follow_redirects=False,  # a redirect could point anywhere, past the address check
            timeout=httpx.Timeout(
                self.settings.attempt_timeout_seconds, connect=self.settings.connect_timeout_seconds
            ),
            limits=httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight),
            trust_env=False,
            verify=self._tls,
        )
        self._clients[subscription_id] = client
        return client

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
                        .where(Delivery.status == "pending", Delivery.lease_until > now)
                        .group_by(Delivery.subscription_id)
                    )
                ).all()
            )
            earlier = aliased(Delivery)
            first_of_subject = ~exists().where(
                earlier.subscription_id == Delivery.subscription_id,
                earlier.order_key == Delivery.order_key,
                earlier.id < Delivery.id,
                earlier.status == "pending",
            )
            ranked = (
                select(
                    Delivery.id,
                    Delivery.subscription_id,
                    func.row_number()
                    .over(
                        partition_by=Delivery.subscription_id,
                        order_by=(Delivery.next_attempt_at, Delivery.id),
                    )
                    .label("rank"),
                )
                .join(Subscription, Subscription.id == Delivery.subscription_id)
                .where(
                    Delivery.status == "pending",
                    Delivery.next_attempt_at <= now,
                    or_(Delivery.lease_until.is_(None), Delivery.lease_until <= now),
                    Subscription.enabled.is_(True),
                    first_of_subject,
                )
                .subquery()
            )
            candidates = (
                await session.execute(
                    select(ranked.c.id, ranked.c.subscription_id)
                    .where(ranked.c.rank <= limit)
                    .order_by(ranked.c.id)
                    .limit(self.settings.claim_batch)
                )
            ).all()
            room = {sub: limit - busy.get(sub, 0) for sub in {c.subscription_id for c in candidates}}
            ids = []
            for candidate in candidates:
                if room[candidate.subscription_id] > 0:
                    room[candidate.subscription_id] -= 1
                    ids.append(candidate.id)
            if not ids:
                return []
            lock = select(Delivery.id).where(
                Delivery.id.in_(ids),
                Delivery.status == "pending",
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
                        Subscription,
                        EventRecord.body,
                        EventRecord.scope,
                    )
                    .join(Subscription, Subscription.id == Delivery.subscription_id)
                    .join(EventRecord, EventRecord.seq == Delivery.event_seq)
                    .where(Delivery.id.in_(ids))
                    .order_by(Delivery.id)
                )
            ).all()
            places = await places_by_event(session, list({r.event_seq for r in rows}))
        claimed = []
        for delivery_id, attempts, event_seq, subscription, body, _scope in rows:
            reader = Identity.model_validate(subscription.identity)
            original = json.loads(body)
            event = redacted(reader, original, places[event_seq])
            claimed.append(
                Claimed(
                    delivery_id=delivery_id,
                    subscription_id=subscription.id,
                    attempt=attempts,
                    event_id=str(event["id"]),
                    event_type=str(event["type"]),
                    url=subscription.url,
                    secrets=self._secrets(subscription, now),
                    body=json.dumps(event, separators=(",", ":"), ensure_ascii=False),
                    request_id=original.get("requestid"),
                    traceparent=original.get("traceparent"),
                    tracestate=original.get("tracestate"),
                )
            )
        return claimed

    @staticmethod
    def _secrets(subscription: Subscription, now: datetime) -> list[str]:
        secrets = [subscription.secret]
        until = subscription.previous_secret_until
        if subscription.previous_secret and until is not None:
            if (until if until.tzinfo else until.replace(tzinfo=UTC)) > now:
                secrets.append(subscription.previous_secret)
        return secrets

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
        address checked now, within the attempt's deadline from connect to the reply's first KiB."""
        attempted_at = utcnow()
        started = time.perf_counter()
        status: int | None = None
        excerpt: str | None = None
        error: str | None = None
        try:
            target = await resolve(claimed.url, self.policy)
            headers = {
                "host": target.host_header,
                "content-type": CONTENT_TYPE,
                "user-agent": "Cradle-Webhooks/1",
                "webhook-id": claimed.event_id,
                "webhook-timestamp": str(int(attempted_at.timestamp())),
                "webhook-signature": signature_header(
                    secrets=claimed.secrets, event_id=claimed.event_id, at=attempted_at, body=claimed.body
                ),
            }
            extensions: dict[str, Any] = {"sni_hostname": target.host} if target.scheme == "https" else {}
            async with asyncio.timeout(self.settings.attempt_timeout_seconds):
                async with self._client(claimed.subscription_id).stream(
                    "POST",
                    target.connect_url,
                    content=claimed.body.encode(),
                    headers=headers,
                    extensions=extensions,
                ) as response:
                    status = response.status_code
                    excerpt = await _excerpt(response)
        except UnsafeTarget as exc:
            error = f"refused: {exc.detail}"
        except TimeoutError:
            error = f"no answer within {self.settings.attempt_timeout_seconds:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
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


async def _excerpt(response: httpx.Response) -> str | None:
    """The first KiB of the reply, never more read."""
    collected = b""
    async for chunk in response.aiter_raw():
        collected += chunk
        if len(collected) >= EXCERPT_BYTES:
            break
    if not collected:
        return None
    return collected[:EXCERPT_BYTES].decode("utf-8", errors="replace")
