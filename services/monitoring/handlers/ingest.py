"""Video systems that speak NATS publish to `cradle.ingest.cctv.<facility_id>` (one event, or a JSON
array of events, per message; `Nats-Msg-Id` = `<facility_id>:<event_id>` lets JetStream drop a
re-send — the facility is in it because the stream's duplicate window is city-wide, while an event
id is unique only within its facility, as in the table). The
JetStream ack the device receives is its proof of durability; this consumer then stores the events
through the same path as `POST /v1/cctv-events` and acks each message only after the commit.

NATS authenticates the device and confines it to its facility's subject (an account permission),
so the subject's facility is the caller: an event naming another facility is refused."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import structlog
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.monitoring.config import MonitoringSettings
from services.monitoring.service.ingest import Ingest
from shared.bounded import raise_if_cancelling
from shared.events.bus import EventBus
from shared.events.consumer import handling, stop_pulling
from shared.identity import ClientKind, Identity
from shared.jsonlimits import json_depth_exceeds
from shared.observability import new_request_id

log = structlog.get_logger("cradle.monitoring.ingest")

DURABLE = "monitoring-ingest"


def device_identity(facility_id: str) -> Identity:
    return Identity(
        client_id=f"nats-device:{facility_id}",
        kind=ClientKind.operator,
        facility_ids=[facility_id],
        scopes=["monitoring:ingest"],
    )


def sent_request_id(message: Msg) -> str | None:
    """The `X-Request-Id` header a device sent with the message, if it is a well-formed one."""
    sent = (message.headers or {}).get("X-Request-Id")
    return sent if sent and new_request_id(sent) == sent else None


class IngestConsumer:
    def __init__(self, *, bus: EventBus, ingest: Ingest, settings: MonitoringSettings) -> None:
        self.bus = bus
        self.ingest = ingest
        self.settings = settings
        self.stored = 0
        self.rejected = 0
        self._task: asyncio.Task[None] | None = None
        self._subscription: Any = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="consumer-ingest")

    async def stop(self) -> None:
        await stop_pulling(self._task, self._subscription)
        self._subscription = None

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=DURABLE,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.settings.consumer_ack_wait_seconds,
            filter_subject=f"{self.bus.namespace.name}.ingest.cctv.*",
            max_ack_pending=self.settings.ingest_fetch_batch * 4,
        )

    async def _run(self) -> None:
        stream = self.bus.namespace.ingest_stream
        while True:
            try:
                js = await self.bus.wait_ready()
                await js.add_consumer(stream, config=self.config())
                self._subscription = await js.pull_subscribe_bind(durable=DURABLE, stream=stream)
                log.info("consumer_bound", stream=stream, durable=DURABLE)
                while True:
                    try:
                        messages = await self._subscription.fetch(
                            self.settings.ingest_fetch_batch, timeout=1.0
                        )
                    except (NatsTimeout, TimeoutError):
                        continue
                    await self.handle(messages)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database away: rebind and go on
                raise_if_cancelling()
                log.warning("ingest_consumer_error", error=f"{type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(1.0)

    async def handle(self, messages: list[Msg]) -> None:
        """Store a fetched batch, grouped by facility and request; ack after commit, nak on failure.
        A message's request id is the `X-Request-Id` a device sent with it, else one made for its
        group; its `traceparent` continues the device's trace. Each log line and each alert's event
        carries them."""
        groups: dict[tuple[str, str | None], tuple[list[Msg], list[Any]]] = {}
        for message in messages:
            facility_id = message.subject.rsplit(".", 1)[-1]
            sent = sent_request_id(message)
            with self._context(message, sent, facility_id):
                items = await self._parse(message)
            if items is None:
                continue
            for item in items:
                if isinstance(item, dict):
                    item.setdefault("facility_id", facility_id)
            group = groups.setdefault((facility_id, sent), ([], []))
            group[0].append(message)
            group[1].extend(items)
        for (facility_id, sent), (batch, items) in groups.items():
            with self._context(batch[0], sent, facility_id):
                await self._store(facility_id, batch, items)

    @staticmethod
    def _context(message: Msg, request_id: str | None, facility_id: str) -> Any:
        headers = message.headers or {}
        return handling(
            "ingest cctv",
            request_id=request_id or new_request_id(None),
            traceparent=headers.get("traceparent"),
            tracestate=headers.get("tracestate"),
            attributes={
                "cradle.service": "monitoring",
                "messaging.system": "nats",
                "messaging.consumer.group.name": DURABLE,
                "cradle.facility_id": facility_id,
            },
        )

    async def _parse(self, message: Msg) -> list[Any] | None:
        """The message's events, or None once a poison message is terminated (never redelivered):
        too deep to parse safely, or not JSON."""
        if json_depth_exceeds(message.data, self.settings.max_json_depth):
            self.rejected += 1
            self.ingest.count(rejected=1)
            log.warning("ingest_too_deep", subject=message.subject, limit=self.settings.max_json_depth)
            await message.term()
            return None
        try:
            body = orjson.loads(message.data)
        except orjson.JSONDecodeError:
            self.rejected += 1
            self.ingest.count(rejected=1)
            log.warning("ingest_unparseable", subject=message.subject)
            await message.term()
            return None
        return body if isinstance(body, list) else [body]

    async def _store(self, facility_id: str, batch: list[Msg], items: list[Any]) -> None:
        try:
            reply = await self.ingest.accept(items, device_identity(facility_id))
        except Exception as exc:
            log.warning(
                "ingest_store_failed", facility_id=facility_id, error=f"{type(exc).__name__}: {exc}"[:300]
            )
            for message in batch:
                with contextlib.suppress(Exception):
                    await message.nak(delay=2.0)
            return
        self.stored += reply.accepted
        self.rejected += len(reply.rejected)
        for refused in reply.rejected:
            log.warning(
                "ingest_event_rejected",
                facility_id=facility_id,
                event_id=refused.event_id,
                errors=[e.model_dump() for e in refused.errors],
            )
        for message in batch:
            with contextlib.suppress(Exception):
                await message.ack()
