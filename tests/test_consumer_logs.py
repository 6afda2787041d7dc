"""Every line logged while a consumer handles a message names the request that caused it and its
trace, bound in one place (shared/events/consumer.py `handling`), not by each handler: the event
consumers' runner and a handler's own lines, monitoring's dead-letter consumer on the parked event,
and monitoring's CCTV ingest on the `X-Request-Id` and `traceparent` a device sent. The gateway's
composite views log their fan-out on the request that asked."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import nats
import pytest
import structlog
from structlog.contextvars import merge_contextvars
from structlog.testing import LogCapture

from gateway import views
from services.monitoring.handlers import dead_letters, ingest
from services.workforce.handlers import HANDLERS
from shared.events import consumer
from shared.events.envelope import CloudEvent
from shared.events.streams import Namespace
from tests.conftest import facility_body, start_stack
from tests.support import DatabaseFactory, eventually

SUBMITTED = "cradle.registry.facility.submitted"


def new_trace() -> tuple[str, str]:
    """A caller's `traceparent` and its trace id."""
    trace_id = f"{uuid.uuid4().int & ((1 << 128) - 1):032x}"
    return f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01", trace_id


def lines(captured: list[dict[str, Any]], *events: str) -> list[dict[str, Any]]:
    return [entry for entry in captured if entry["event"] in events]


async def test_every_consumer_line_names_the_request_and_its_trace(
    databases: DatabaseFactory,
    shared_nats_url: str,
    namespace: str,
    keys: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each module's logger through production's context step (merge_contextvars) into a capture:
    # loggers are cached per process at first use, so a stream configured by an earlier test of
    # this worker is not this test's to read.
    capture = LogCapture()
    captured = capture.entries

    def capturing() -> Any:
        return structlog.wrap_logger(
            None,
            processors=[merge_contextvars, capture],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        )

    for module in (consumer, dead_letters, ingest, views):
        monkeypatch.setattr(module, "log", capturing())
    handler_log = capturing()

    async def fails_after_logging(event: CloudEvent, session: Any) -> None:
        handler_log.warning("handler_refuses", event_type=event.type)  # binds nothing itself
        raise ValueError("cannot handle this")

    monkeypatch.setitem(HANDLERS, SUBMITTED, fails_after_logging)
    request_id = f"logs-{uuid.uuid4().hex[:12]}"
    traceparent, trace_id = new_trace()
    device_request = f"nvr-{uuid.uuid4().hex[:12]}"
    device_traceparent, device_trace = new_trace()
    ns = Namespace(namespace)

    async with start_stack(
        databases=databases,
        nats_url=shared_nats_url,
        namespace=namespace,
        keys=keys,
        services=("registry", "workforce", "monitoring"),
    ) as stack:
        headers = {**await stack.operator(), "X-Request-Id": request_id, "traceparent": traceparent}
        created = await stack.client.post("/v1/facilities", json=facility_body(), headers=headers)
        assert created.status_code == 201, created.text

        # The workforce's handler fails every time: retried, then parked; monitoring raises an
        # alert for the dead letter.
        await eventually(
            lambda: lines(captured, "dead_letter_alert_raised", "dead_letter_without_facility"),
            timeout=30,
        )

        # A device's messages: one not JSON, one whose event is refused.
        facility_id = created.json()["id"]
        nc = await nats.connect(shared_nats_url)
        try:
            js = nc.jetstream()
            sent = {"X-Request-Id": device_request, "traceparent": device_traceparent}
            await js.publish(ns.ingest_subject(facility_id), b"not json", headers=sent)
            await js.publish(
                ns.ingest_subject(facility_id),
                json.dumps([{"event_id": "bad-1", "type": "no_such_type"}]).encode(),
                headers=sent,
            )
        finally:
            await nc.close()
        await eventually(lambda: lines(captured, "ingest_event_rejected"))

        # The gateway's indicators fan out to every service; one that is down is logged on the
        # request that asked.
        view_request = f"view-{uuid.uuid4().hex[:12]}"
        view_traceparent, view_trace = new_trace()
        reader = await stack.headers_for(
            name="wcwc", kind="bureau", bureau="WCWC", scopes=["indicators:read"]
        )
        with stack.down("monitoring"):
            answer = await stack.client.get(
                "/v1/indicators",
                headers={**reader, "X-Request-Id": view_request, "traceparent": view_traceparent},
            )
        assert answer.status_code == 200, answer.text
    entries = list(captured)

    handled = lines(
        entries,
        "handler_refuses",
        "event_handler_failed",
        "event_dead_lettered",
        "dead_letter_alert_raised",
        "dead_letter_without_facility",
    )
    names = {entry["event"] for entry in handled}
    assert {"handler_refuses", "event_handler_failed", "event_dead_lettered"} <= names
    assert names & {"dead_letter_alert_raised", "dead_letter_without_facility"}
    for entry in handled:
        assert (entry.get("request_id"), entry.get("trace_id")) == (request_id, trace_id), entry

    ingested = lines(entries, "ingest_unparseable", "ingest_event_rejected")
    assert {entry["event"] for entry in ingested} == {"ingest_unparseable", "ingest_event_rejected"}
    for entry in ingested:
        assert (entry.get("request_id"), entry.get("trace_id")) == (device_request, device_trace), entry

    fanned = lines(entries, "view_part_unavailable")
    assert {entry["service"] for entry in fanned} >= {"monitoring"}
    for entry in fanned:
        assert (entry.get("request_id"), entry.get("trace_id")) == (view_request, view_trace), entry

    # Outside any handling nothing is left bound.
    assert structlog.contextvars.get_contextvars().get("request_id") is None
