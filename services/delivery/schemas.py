"""Request and reply shapes of the subscriptions API and the feed."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.partial import PartialUpdate
from shared.scalars import Flag
from shared.text import ShortText

# `cradle.<service>.<entity>.<verb>`, each segment a name or a glob (`*`, `**`, a final `>`).
_GLOB = re.compile(r"^cradle(\.(\*\*|[a-z_*]+))+(\.>)?$|^cradle\.>$|^\*\*$")


def _event_type_glob(value: str) -> str:
    if not _GLOB.match(value):
        raise ValueError(
            "must be an event type or a glob on cradle.<service>.<entity>.<verb>, e.g. "
            "cradle.workforce.ban.* or cradle.registry.facility.approved"
        )
    return value


EventTypeGlob = Annotated[str, Field(min_length=3, max_length=200), AfterValidator(_event_type_glob)]
Url = Annotated[str, Field(min_length=8, max_length=2048)]


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://edu.example.gov.cn/hooks/cradle",
                    "event_types": ["cradle.workforce.ban.*"],
                    "description": "教委禁业名单同步",
                }
            ]
        },
    )

    url: Url
    event_types: list[EventTypeGlob] = Field(min_length=1, max_length=50)
    description: ShortText | None = None


class SubscriptionUpdate(PartialUpdate):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": False}]})
    CLEARABLE = frozenset({"description"})

    url: Url | None = None
    event_types: list[EventTypeGlob] | None = Field(default=None, min_length=1, max_length=50)
    description: ShortText | None = None
    enabled: Flag | None = None  # true re-enables a disabled subscription (its pending events resume)


class SubscriptionRead(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    previous_secret_until: datetime | None
    created_at: datetime
    updated_at: datetime


class SubscriptionWithSecret(SubscriptionRead):
    """The secret is shown once, when the subscription is made or its secret rotated."""

    secret: str


class DeliveryAttemptRead(BaseModel):
    id: int
    delivery_id: int
    event_id: str
    event_type: str
    attempt: int
    attempted_at: datetime
    outcome: str
    status_code: int | None
    latency_ms: float
    error: str | None
    response_excerpt: str | None


class ReplayRead(BaseModel):
    replayed: int
    since: datetime


class FeedPage(BaseModel):
    """`next_cursor` is always given: the place to ask from next time, even when nothing is new."""

    items: list[dict[str, Any]]
    next_cursor: str
    has_more: bool
