"""Dead letters: what the consumer runner parks after `max_deliver` failures (or at once, for an
event it can never read), and how they are listed and replayed.

Layout on the dead-letter stream (<NS>_DLQ):
  <ns>.dlq.<service>.<consumer>           waiting: the original event, unchanged, with headers
                                          saying where it came from and why it failed
  <ns>.dlq.<service>.<consumer>.replayed  the record of a replay (the waiting message is deleted)

So "unreplayed dead letters of a service" is one stream-info call filtered by
`<ns>.dlq.<service>.*`, and monitoring's alerting consumer (`<ns>.dlq.*.*`) never sees the records.

A replay republishes the event byte for byte (the producer's word: same CloudEvent id) to its
original subject with a fresh `Nats-Msg-Id`, so JetStream's duplicate window does not drop it. Every
consumer of that subject gets it again; those that handled it already find its id in their inbox
and skip it, the one that failed handles it once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from shared.events.streams import Namespace

ORIGINAL_SUBJECT = "Cradle-Original-Subject"
ORIGINAL_SEQUENCE = "Cradle-Original-Sequence"
SERVICE = "Cradle-Service"
CONSUMER = "Cradle-Consumer"
ERROR = "Cradle-Error"
EVENT_ID = "Cradle-Event-Id"
EVENT_TYPE = "Cradle-Event-Type"
FACILITY_ID = "Cradle-Facility-Id"
DEAD_LETTERED_AT = "Cradle-Dead-Lettered-At"
REPLAYED_AT = "Cradle-Replayed-At"
REPLAY_OF = "Cradle-Replay-Of"  # on the republished event: the dead letter's stream sequence
REPLAYED_SUFFIX = "replayed"
# Monitoring turns every dead letter into an alert (services/monitoring/handlers/dead_letters.py).
ALERTING_READER = "monitoring"
ALERTING_DURABLE = "monitoring-dead-letters"


def dead_letter_headers(
    *,
    service: str,
    consumer: str,
    original_subject: str,
    original_sequence: int,
    error: str,
    event_id: str | None,
    event_type: str | None,
    facility_id: str | None,
    at: datetime,
) -> dict[str, str]:
    """Everything a replay and an alert need, as NATS headers (ASCII: the error is JSON-escaped)."""
    headers = {
        SERVICE: service,
        CONSUMER: consumer,
        ORIGINAL_SUBJECT: original_subject,
        ORIGINAL_SEQUENCE: str(original_sequence),
        ERROR: json.dumps(error, ensure_ascii=True)[:1000],
        DEAD_LETTERED_AT: at.astimezone(UTC).isoformat(),
        "Nats-Msg-Id": f"dlq-{service}-{consumer}-{original_sequence}",
    }
    for name, value in ((EVENT_ID, event_id), (EVENT_TYPE, event_type), (FACILITY_ID, facility_id)):
        if value:
            headers[name] = value
    return headers


def facility_of(data: object) -> str | None:
    """The facility an event's payload is about, when it names one (`facility_id`)."""
    if isinstance(data, dict):
        facility_id = data.get("facility_id")
        if isinstance(facility_id, str) and facility_id:
            return facility_id
    return None


def _error_text(raw: str | None) -> str:
    if not raw:
        return ""
    try:
        decoded = json.loads(raw)
    except ValueError:
        return raw
    return decoded if isinstance(decoded, str) else raw


@dataclass(frozen=True)
class DeadLetter:
    seq: int  # on the dead-letter stream
    subject: str
    service: str
    consumer: str
    original_subject: str
    event_id: str | None
    event_type: str | None
    facility_id: str | None
    reason: str
    dead_lettered_at: datetime | None
    replayed_at: datetime | None
    data: bytes

    @property
    def replayed(self) -> bool:
        return self.replayed_at is not None

    @classmethod
    def from_headers(cls, *, seq: int, subject: str, headers: dict[str, str], data: bytes) -> DeadLetter:
        def when(name: str) -> datetime | None:
            value = headers.get(name)
            try:
                return datetime.fromisoformat(value) if value else None
            except ValueError:
                return None

        replayed = subject.endswith("." + REPLAYED_SUFFIX)
        parts = subject.split(".")
        return cls(
            seq=seq,
            subject=subject,
            service=headers.get(SERVICE) or (parts[2] if len(parts) > 2 else ""),
            consumer=headers.get(CONSUMER) or (parts[3] if len(parts) > 3 else ""),
            original_subject=headers.get(ORIGINAL_SUBJECT, ""),
            event_id=headers.get(EVENT_ID),
            event_type=headers.get(EVENT_TYPE),
            facility_id=headers.get(FACILITY_ID),
            reason=_error_text(headers.get(ERROR)),
            dead_lettered_at=when(DEAD_LETTERED_AT),
            replayed_at=when(REPLAYED_AT) if replayed else None,
            data=data,
        )

    @classmethod
    def from_stream(cls, message: RawStreamMsg) -> DeadLetter:
        return cls.from_headers(
            seq=message.seq or 0,
            subject=message.subject or "",
            headers=dict(message.headers or {}),
            data=message.data or b"",
        )


def waiting_filter(namespace: Namespace, service: str = "*") -> str:
    """Subjects of dead letters not yet replayed: `<ns>.dlq.<service>.<consumer>`."""
    return f"{namespace.name}.dlq.{service}.*"


async def waiting_counts(js: JetStreamContext, namespace: Namespace, service: str) -> dict[str, int]:
    """Unreplayed dead letters of `service`'s consumers, by consumer: one stream-info request."""
    info = await js.stream_info(
        namespace.dead_letter_stream, subjects_filter=waiting_filter(namespace, service)
    )
    return {
        subject.rsplit(".", 1)[-1]: count for subject, count in (info.state.subjects or {}).items() if count
    }


async def list_dead_letters(
    js: JetStreamContext, namespace: Namespace, *, include_replayed: bool = False, limit: int = 1000
) -> list[DeadLetter]:
    """Oldest first. Walks the stream by `next` lookups, so deleted (replayed) sequences cost nothing."""
    found: list[DeadLetter] = []
    seq = 1
    subject = f"{namespace.name}.dlq.>"
    while len(found) < limit:
        try:
            message = await js.get_msg(namespace.dead_letter_stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            break
        letter = DeadLetter.from_stream(message)
        if include_replayed or not letter.replayed:
            found.append(letter)
        seq = letter.seq + 1
    return found


async def get_dead_letter(js: JetStreamContext, namespace: Namespace, seq: int) -> DeadLetter | None:
    try:
        return DeadLetter.from_stream(await js.get_msg(namespace.dead_letter_stream, seq=seq))
    except NotFoundError:
        return None


async def replay(js: JetStreamContext, namespace: Namespace, letter: DeadLetter) -> DeadLetter:
    """Republish the event to its original subject, record the replay, delete the waiting message.
    Each step is safe to repeat, so a replay cut short is finished by running it again."""
    if letter.replayed:
        raise ValueError(f"dead letter {letter.seq} was replayed at {letter.replayed_at}")
    if not letter.original_subject:
        raise ValueError(f"dead letter {letter.seq} does not say where it came from")
    now = datetime.now(UTC)
    await js.publish(
        letter.original_subject,
        letter.data,
        headers={
            "Nats-Msg-Id": f"replay-{namespace.dead_letter_stream}-{letter.seq}",
            REPLAY_OF: str(letter.seq),
        },
        timeout=5,
    )
    original = await js.get_msg(namespace.dead_letter_stream, seq=letter.seq)
    record = dict(original.headers or {})
    record |= {
        REPLAYED_AT: now.isoformat(),
        "Nats-Msg-Id": f"replayed-{letter.seq}",
        REPLAY_OF: str(letter.seq),
    }
    ack = await js.publish(f"{letter.subject}.{REPLAYED_SUFFIX}", letter.data, headers=record, timeout=5)
    await js.delete_msg(namespace.dead_letter_stream, letter.seq)
    return DeadLetter.from_headers(
        seq=ack.seq, subject=f"{letter.subject}.{REPLAYED_SUFFIX}", headers=record, data=letter.data
    )
