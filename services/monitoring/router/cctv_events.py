"""CCTV events: batches posted by the video systems' senders, each event judged on its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Request

from services.monitoring.deps import IngestDep, Sender, SettingsDep
from services.monitoring.errors import BatchTooLarge
from services.monitoring.schemas import CctvEventIn, IngestReply
from services.monitoring.service.ingest import clean_batch
from shared.errors import BadRequest, invalid
from shared.i18n import tr

router = APIRouter(prefix="/v1", tags=["cctv"])

_EVENT_SCHEMA = CctvEventIn.model_json_schema()
assert "$defs" not in _EVENT_SCHEMA, "keep CctvEventIn self-contained: its schema is inlined below"
# Each item is judged on its own: one that is not a valid event is listed in `rejected` (by index)
# and the rest are stored, so the batch as a whole accepts any item. Said so here, with the shape a
# valid event has, instead of promising a refusal the service does not make.
_BATCH_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": 1000,
    "items": {
        "anyOf": [
            _EVENT_SCHEMA,
            {"description": "Anything else: not stored, listed in the reply's `rejected` with its errors"},
        ]
    },
}


@router.post(
    "/cctv-events",
    response_model=IngestReply,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _BATCH_SCHEMA}}}
    },
    responses={413: {"description": "More events than the batch limit (1,000)"}},
)
async def ingest_events(
    request: Request, caller: Sender, settings: SettingsDep, ingest: IngestDep
) -> IngestReply:
    """A batch of up to 1,000 events. Each is validated on its own: bad ones are listed by index and
    the rest are stored. A re-sent `event_id` is counted in `duplicates` and ignored. The reply
    comes only after the events are committed."""
    body = await request.body()
    if len(body) > settings.max_batch_bytes:
        raise BatchTooLarge(
            tr(
                "A batch is at most {max_batch_bytes} bytes.",
                max_batch_bytes=settings.max_batch_bytes,
            )
        )
    items: Sequence[Any] | None = clean_batch(body)
    if items is None:  # not all valid events: parsed again, to judge each item on its own
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadRequest("The body is not valid JSON.") from None
        if not isinstance(items, list):
            raise invalid("body", "is a JSON array of events")
    if len(items) > settings.max_batch_events:
        raise BatchTooLarge(
            f"{len(items)} events; a batch holds at most {settings.max_batch_events}: split it."
        )
    return await ingest.accept(items, caller)
