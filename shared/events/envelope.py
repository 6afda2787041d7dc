"""CloudEvents 1.0 envelope, JSON encoded; `id` doubles as JetStream's `Nats-Msg-Id`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


class CloudEvent(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    specversion: str = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    subject: str | None = None
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: str = "application/json"
    data: dict[str, object] = Field(default_factory=dict)
    # CloudEvents extension attribute: the request that caused the event, for tracing across services.
    requestid: str | None = None
    # CloudEvents distributed-tracing extension (W3C Trace Context): the producer's span when the
    # event was written; the relay's publish and every consumer's handling continue its trace.
    traceparent: str | None = None
    tracestate: str | None = None


class DomainEvent(BaseModel):
    """Base for the payload models each service declares in its `events.py`. `event_type` is the
    CloudEvents type and, under the default namespace, the NATS subject."""

    event_type: ClassVar[str]

    def subject_id(self) -> str | None:
        """The CloudEvents `subject`: the id of the entity the event is about."""
        return None
