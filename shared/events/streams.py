"""JetStream layout: one stream per producing service, the ingest stream and the dead-letter stream.
Declared here, in code; created or updated by the provisioning step (`cradle nats provision`, run by
`cradle up` and `cradle migrate`) with the admin credential. Services only wait for them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

log = structlog.get_logger("cradle.streams")

SERVICES = ("registry", "workforce", "monitoring", "guidance", "gateway", "delivery")
# Whose streams each service consumes (its durable there is named after it). Its NATS credential
# may read those and no other; tests/shared/test_nats_auth.py checks this against the handlers.
READS: dict[str, tuple[str, ...]] = {
    "registry": ("workforce", "monitoring"),
    "workforce": ("registry", "monitoring"),
    "monitoring": ("registry", "workforce"),
    "guidance": (),
    "gateway": (),
    # What the API's callers may see, pushed to their webhooks and feed (not the devices' raw events,
    # not the gateway's audit checkpoints).
    "delivery": ("registry", "workforce", "monitoring", "guidance"),
}
# The devices' stream has one reader: monitoring's ingest consumer (services/monitoring/handlers/ingest.py).
INGEST_READER = "monitoring"
INGEST_DURABLE = "monitoring-ingest"
DEFAULT_NAMESPACE = "cradle"
DUPLICATE_WINDOW_SECONDS = 120.0
EVENT_MAX_AGE_SECONDS = 365 * 24 * 3600.0
# Raw device events (cradle.ingest.cctv.<facility_id>) wait here until monitoring stores them.
INGEST_MAX_AGE_SECONDS = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Namespace:
    """Maps CloudEvents types (`cradle.registry.facility.submitted`) to NATS subjects and stream
    names under a namespace, so test runs sharing one server never meet."""

    name: str = DEFAULT_NAMESPACE

    def subject(self, event_type: str) -> str:
        head, _, rest = event_type.partition(".")
        if head != DEFAULT_NAMESPACE or not rest:
            raise ValueError(f"event type {event_type!r} must start with '{DEFAULT_NAMESPACE}.'")
        return f"{self.name}.{rest}"

    def event_type(self, subject: str) -> str:
        _, _, rest = subject.partition(".")
        return f"{DEFAULT_NAMESPACE}.{rest}"

    def stream(self, service: str) -> str:
        return f"{self.name}_{service}".upper().replace("-", "_")

    def service_subjects(self, service: str) -> str:
        return f"{self.name}.{service}.>"

    @property
    def ingest_stream(self) -> str:
        return f"{self.name}_INGEST".upper().replace("-", "_")

    def ingest_subject(self, facility_id: str) -> str:
        return f"{self.name}.ingest.cctv.{facility_id}"

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.name}_DLQ".upper().replace("-", "_")

    def dead_letter_subject(self, service: str, consumer: str) -> str:
        return f"{self.name}.dlq.{service}.{consumer}"


def stream_configs(namespace: Namespace, *, replicas: int) -> list[StreamConfig]:
    configs = [
        StreamConfig(
            name=namespace.stream(service),
            subjects=[namespace.service_subjects(service)],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=EVENT_MAX_AGE_SECONDS,
            num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            # The gateway's stream carries its signed audit checkpoints (gateway/checkpoints.py): no
            # message may be deleted or purged, so the database's audit log cannot be shortened to
            # below one. (NATS refuses overlapping streams, so they live here, not in one of their own.)
            deny_delete=service == "gateway",
            deny_purge=service == "gateway",
        )
        for service in SERVICES
    ]
    configs.append(
        StreamConfig(
            name=namespace.ingest_stream,
            subjects=[f"{namespace.name}.ingest.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=INGEST_MAX_AGE_SECONDS,
            num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        )
    )
    configs.append(
        StreamConfig(
            name=namespace.dead_letter_stream,
            subjects=[f"{namespace.name}.dlq.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=EVENT_MAX_AGE_SECONDS,
            num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        )
    )
    return configs


# What stream_configs declares. A stream that already has it is left alone: a JetStream cluster may
# leave concurrent requests about one stream (even an update that changes nothing) unanswered until
# they time out, so two provisioning runs at once must not keep failing each other.
_DECLARED = (
    "subjects",
    "retention",
    "storage",
    "discard",
    "max_age",
    "num_replicas",
    "duplicate_window",
    "deny_delete",
    "deny_purge",
)


def _as_declared(current: StreamConfig, declared: StreamConfig) -> bool:
    return all(
        getattr(declared, name) is None or getattr(current, name) == getattr(declared, name)
        for name in _DECLARED
    )


async def ensure_streams(js: JetStreamContext, namespace: Namespace, *, replicas: int) -> None:
    """Create missing streams and bring existing ones to the declared config: the provisioning step,
    with a credential that may manage streams. Run before the services start, so a consumer can bind
    before the producer has ever started."""
    for config in stream_configs(namespace, replicas=replicas):
        try:
            info = await js.stream_info(config.name)
        except NotFoundError:
            try:
                await js.add_stream(config)
                continue
            except BadRequestError:  # another service created it a moment ago
                info = await js.stream_info(config.name)
        if not _as_declared(info.config, config):
            await js.update_stream(config)


async def wait_for_streams(js: JetStreamContext, names: Sequence[str], *, interval: float = 1.0) -> None:
    """Block until every stream exists. A service's credential may not create them: until the
    provisioning step has run, it says so and keeps looking."""
    delay = interval / 4
    while True:
        missing = []
        for name in names:
            try:
                await js.stream_info(name)
            except NotFoundError:
                missing.append(name)
        if not missing:
            return
        log.warning("streams_missing", streams=missing, hint="run `cradle nats provision`")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
