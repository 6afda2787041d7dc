"""Dead letters are never silent: monitoring reads the dead-letter stream (every service's consumers
park there what they gave up on) and raises a critical alert on the facility the event is about,
for its district and the city. Replays are recorded under another subject this consumer ignores."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.monitoring.service.alerts import raise_dead_letter_alert
from shared.bounded import raise_if_cancelling
from shared.clock import utcnow
from shared.db import session_scope
from shared.events.bus import EventBus
from shared.events.consumer import handling, stop_pulling
from shared.events.deadletters import ALERTING_DURABLE, DeadLetter, waiting_filter
from shared.events.envelope import CloudEvent

log = structlog.get_logger("cradle.monitoring.dead_letters")

DURABLE = ALERTING_DURABLE
RETRY_SECONDS = 5.0


class DeadLetterConsumer:
    def __init__(
        self, *, bus: EventBus, maker: async_sessionmaker[AsyncSession], ack_wait_seconds: float
    ) -> None:
        self.bus = bus
        self.maker = maker
        self.ack_wait_seconds = ack_wait_seconds
        self._task: asyncio.Task[None] | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=DURABLE,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_seconds,
            filter_subject=waiting_filter(self.bus.namespace),
            max_ack_pending=100,
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="consumer-dead-letters")

    async def stop(self) -> None:
        await stop_pulling(self._task, self._subscription)
        self._subscription = None

    async def _run(self) -> None:
        stream = self.bus.namespace.dead_letter_stream
        while True:
            try:
                js = await self.bus.wait_ready()
                await js.add_consumer(stream, config=self.config())
                self._subscription = await js.pull_subscribe_bind(durable=DURABLE, stream=stream)
                log.info("consumer_bound", stream=stream, durable=DURABLE)
                while True:
                    try:
                        messages = await self._subscription.fetch(32, timeout=1.0)
                    except (NatsTimeout, TimeoutError):
                        continue
                    for message in messages:
                        await self.handle(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database away: rebind and go on
                raise_if_cancelling()
                log.warning("dead_letter_consumer_error", error=f"{type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(1.0)

    async def handle(self, message: Msg) -> None:
        # The parked message is the event as it was published: its request id and trace go on here.
        try:
            event: CloudEvent | None = CloudEvent.model_validate_json(message.data)
        except ValidationError:
            event = None
        with handling(
            "alert dead letter",
            request_id=event.requestid if event else None,
            traceparent=event.traceparent if event else None,
            tracestate=event.tracestate if event else None,
            attributes={
                "cradle.service": "monitoring",
                "messaging.system": "nats",
                "messaging.consumer.group.name": DURABLE,
            },
        ):
            await self._alert(message)

    async def _alert(self, message: Msg) -> None:
        letter = DeadLetter.from_headers(
            seq=message.metadata.sequence.stream,
            subject=message.subject,
            headers=dict(message.headers or {}),
            data=message.data,
        )
        log_ctx = {
            "service": letter.service,
            "consumer": letter.consumer,
            "event_id": letter.event_id,
            "event_type": letter.event_type,
            "seq": letter.seq,
        }
        try:
            async with session_scope(self.maker) as session:
                raised = await raise_dead_letter_alert(session, letter=letter, now=utcnow())
        except Exception as exc:
            # The alert is the point: keep it coming until it is stored (the alert's source_ref
            # makes a repeat harmless).
            log.warning("dead_letter_alert_failed", error=f"{type(exc).__name__}: {exc}"[:300], **log_ctx)
            with contextlib.suppress(Exception):
                await message.nak(delay=RETRY_SECONDS)
            return
        if raised is None:
            log.critical("dead_letter_without_facility", reason=letter.reason[:300], **log_ctx)
        else:
            log.error("dead_letter_alert_raised", alert_id=raised.alert.id, **log_ctx)
        with contextlib.suppress(Exception):
            await message.ack()
