"""Cameras and the CCTV event batches their senders post."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.monitoring.schemas.common import EventId, Uuid
from shared.clock import Timestamp
from shared.errors import FieldError
from shared.scalars import Flag
from shared.text import Payload, line


class CameraLocation(StrEnum):
    classroom = "classroom"
    sleeping_room = "sleeping_room"
    kitchen = "kitchen"
    dining_room = "dining_room"
    entrance = "entrance"
    corridor = "corridor"
    outdoor = "outdoor"
    toilet_area = "toilet_area"  # the area outside, never inside, per privacy rules
    other = "other"


class CameraCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "facility_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                    "location": "classroom",
                    "vendor": "海康威视",
                    "external_id": "NVR-02-CH07",
                    "label": "二楼小班教室",
                }
            ]
        },
    )

    facility_id: Uuid
    location: CameraLocation
    vendor: line(100)
    external_id: Annotated[line(100), Field(description="The video system's own id")]
    label: line(200) | None = None


class CameraUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"label": "二楼托小班教室"}]})

    location: CameraLocation | None = None
    vendor: line(100) | None = None
    label: line(200) | None = None
    active: Flag | None = None


class CameraRead(BaseModel):
    id: str
    facility_id: str
    location: str
    vendor: str
    external_id: str
    label: str | None
    active: bool
    status: str = Field(description="online | offline | never_seen, from the last event or heartbeat")
    last_seen_at: datetime | None
    last_event_type: str | None
    registered_at: datetime
    version: int = 1


class CctvEventIn(BaseModel):
    """One event from a video system. Name the camera by Cradle's `camera_id` or by the video
    system's `external_id` (unique within the facility)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "event_id": "nvr02-20260302-000173",
                    "external_id": "NVR-02-CH07",
                    "facility_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                    "type": "heartbeat",
                    "occurred_at": "2026-03-02T09:30:00+08:00",
                }
            ]
        },
    )

    event_id: EventId = Field(
        description="The sender's id of the event, unique within its facility: a re-sent event is stored "
        "once, whatever else it carries. Prefer time-ordered ids (UUIDv7, ULID): ingest then stays as "
        "fast however many events are stored; other ids (uuid4, a device's own sequence) slow it as "
        "the table grows."
    )
    camera_id: Uuid | None = None
    external_id: line(100) | None = None
    facility_id: Uuid
    # A Literal, not the enum, so the event's JSON schema stays self-contained (it is inlined in the
    # batch's request body).
    type: Literal[
        "heartbeat",
        "motion",
        "prolonged_crying",
        "fall",
        "intrusion",
        "smoke_fire",
        "tamper",
        "abuse_suspected",
        "video_loss",
    ]
    occurred_at: Timestamp
    payload: Payload = Field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        """What makes an event unique: the sender's id within its facility."""
        return (self.event_id, self.facility_id)

    @model_validator(mode="after")
    def _names_a_camera(self) -> CctvEventIn:
        if (self.camera_id is None) == (self.external_id is None):
            raise ValueError("give exactly one of camera_id and external_id")
        return self


class RejectedEvent(BaseModel):
    index: int
    event_id: str | None = None
    errors: list[FieldError]


class IngestReply(BaseModel):
    accepted: int = Field(description="New events stored by this call")
    duplicates: int = Field(
        description="Events whose event_id was already stored for their facility (ignored)"
    )
    rejected: list[RejectedEvent]
    alerts_raised: int = 0
