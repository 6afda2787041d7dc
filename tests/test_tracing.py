"""One request's trace: the gateway's hop, the service's request, the outbox's publish to JetStream
and the consumer's handling in another service are spans of one trace, continuing the caller's
`traceparent`; the event carries it (and the request id) as CloudEvents extensions, and the
consumer's log lines name the request."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from structlog.contextvars import merge_contextvars
from structlog.testing import LogCapture

from services.workforce.models import FacilityProjection
from shared import tracing
from shared.events import consumer as consumer_module
from shared.events.streams import Namespace
from shared.tracing import configure_tracing
from tests.conftest import facility_body, start_stack
from tests.support import DatabaseFactory, eventually

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def finished_spans() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider (one per process, as in production) also hands every ended
    span to an in-memory exporter."""
    configure_tracing("tests")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def spans_of(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [
        s for s in exporter.get_finished_spans() if s.context is not None and s.context.trace_id == trace_id
    ]


async def test_one_request_is_one_trace_from_the_gateway_to_the_consumer(
    databases: DatabaseFactory,
    shared_nats_url: str,
    namespace: str,
    keys: dict[str, Any],
    finished_spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The consumer's log lines through the production chain's context step (request id, event id
    # from structlog's contextvars) into a capture: loggers are cached per process at first use, so
    # whatever stream this worker's first test configured is not this test's to read.
    captured = LogCapture()
    monkeypatch.setattr(
        consumer_module,
        "log",
        structlog.wrap_logger(
            None,
            processors=[merge_contextvars, captured],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        ),
    )
    trace_id = uuid.uuid4().int & ((1 << 128) - 1)
    caller_span = uuid.uuid4().int & ((1 << 64) - 1)
    traceparent = f"00-{trace_id:032x}-{caller_span:016x}-01"
    request_id = f"trace-test-{uuid.uuid4().hex[:12]}"
    async with start_stack(
        databases=databases,
        nats_url=shared_nats_url,
        namespace=namespace,
        keys=keys,
    ) as stack:
        headers = {**await stack.operator(), "traceparent": traceparent, "X-Request-Id": request_id}
        created = await stack.client.post("/v1/facilities", json=facility_body(), headers=headers)
        assert created.status_code == 201, created.text
        assert created.headers["x-request-id"] == request_id
        facility_id = created.json()["id"]

        async def projected() -> FacilityProjection | None:
            async with stack.workforce.state.sessionmaker() as session:
                return await session.get(FacilityProjection, facility_id)

        await eventually(projected)

        def whole_trace() -> list[ReadableSpan] | None:
            found = spans_of(finished_spans, trace_id)
            return found if any(s.kind == SpanKind.CONSUMER for s in found) else None

        spans = await eventually(whole_trace)

        # The event on the stream carries the trace and the request id beside `requestid`.
        nc = await nats.connect(shared_nats_url)
        try:
            js = nc.jetstream()
            subject = Namespace(namespace).subject("cradle.registry.facility.submitted")
            message = await js.get_last_msg(Namespace(namespace).stream("registry"), subject)
            envelope = json.loads(message.data)
        finally:
            await nc.close()

    by_kind: dict[SpanKind, list[ReadableSpan]] = {}
    for span in spans:
        by_kind.setdefault(span.kind, []).append(span)
    servers = {s.attributes["cradle.service"]: s for s in by_kind[SpanKind.SERVER]}  # type: ignore[index]
    gateway, registry = servers["gateway"], servers["registry"]
    (publish,) = [s for s in by_kind[SpanKind.PRODUCER] if s.name.endswith("registry.facility.submitted")]
    (consumed,) = [s for s in by_kind[SpanKind.CONSUMER] if s.attributes["cradle.service"] == "workforce"]  # type: ignore[index]

    # Each span is the child of the one before it, the first of the caller's.
    assert gateway.parent is not None and gateway.parent.span_id == caller_span
    assert gateway.name.startswith("gateway POST ^/v1/(facilities")  # the route the gateway matched
    assert registry.parent is not None and registry.parent.span_id == gateway.context.span_id  # type: ignore[union-attr]
    assert registry.name == "registry POST /v1/facilities"
    assert registry.attributes["cradle.request_id"] == request_id  # type: ignore[index]
    assert publish.parent is not None and publish.parent.span_id == registry.context.span_id  # type: ignore[union-attr]
    assert consumed.parent is not None and consumed.parent.span_id == registry.context.span_id  # type: ignore[union-attr]
    assert [link.context.span_id for link in consumed.links] == [registry.context.span_id]  # type: ignore[union-attr]
    assert consumed.attributes["cradle.request_id"] == request_id  # type: ignore[index]

    assert envelope["requestid"] == request_id
    assert envelope["traceparent"] == f"00-{trace_id:032x}-{registry.context.span_id:016x}-01"  # type: ignore[union-attr]

    (handled,) = [
        entry
        for entry in captured.entries
        if entry["event"] == "event_handled" and entry.get("event_id") == envelope["id"]
    ]
    assert (
        handled["request_id"] == request_id and handled["event_type"] == "cradle.registry.facility.submitted"
    )


def test_a_span_that_would_not_be_recorded_is_known_before_it_is_made(
    finished_spans: InMemorySpanExporter,
) -> None:
    """The sender skips an attempt's span when `may_record` says no: only ever for a span the SDK
    would not have recorded, and never for a sampled caller's trace."""
    trace_id, span_id = uuid.uuid4().int & ((1 << 128) - 1), uuid.uuid4().int & ((1 << 64) - 1)
    sampled = tracing.context_from(f"00-{trace_id:032x}-{span_id:016x}-01")
    unsampled = tracing.context_from(f"00-{trace_id:032x}-{span_id:016x}-00")
    for parent in (sampled, unsampled, Context()):
        span = tracing.tracer.start_span("probe", context=parent)
        span.end()
        assert tracing.may_record(parent) or not span.is_recording()
    assert tracing.may_record(sampled)


# A fresh process (the tracer provider is made once per process): the tracing set up as a service
# sets it up, one sampled span ended and flushed; prints how many spans reached the OTLP exporter
# (its `export` counts them instead of sending).
EXPORTED = """
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from shared import tracing

sent = []
OTLPSpanExporter.export = lambda self, spans: sent.extend(spans) or SpanExportResult.SUCCESS
tracing.configure_tracing("probe")
parent = tracing.context_from("00-" + "a" * 32 + "-" + "b" * 16 + "-01")
tracing.tracer.start_span("probe", context=parent).end()
trace.get_tracer_provider().force_flush()
print(len(sent))
"""


@pytest.mark.parametrize(
    "setting", [None, "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
)
def test_the_otlp_exporter_is_off_unless_one_setting_turns_it_on(setting: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if setting is not None:
        env[setting] = "http://127.0.0.1:9/v1/traces"  # never reached: `export` is counted, not sent
    done = subprocess.run(
        [sys.executable, "-c", EXPORTED], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("0" if setting is None else "1")
