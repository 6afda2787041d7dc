"""OpenTelemetry traces across the gateway, the services, the outbox, JetStream and the consumers.

Every process keeps an SDK tracer provider, so each request and each event has a trace to carry
(W3C `traceparent`/`tracestate`: in HTTP headers between the gateway and a service, and as
CloudEvents extension attributes in every event). Spans leave the process only when the standard
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set: then an OTLP/HTTP
exporter sends them in batches; otherwise traces started here are not recorded at all (their ids
still travel), and those a caller marked sampled are recorded and dropped where they end.
`OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER` and the other standard variables apply as usual."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from fastapi.telemetry import TelemetryConfig
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import RandomIdGenerator, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import Link, Span, SpanKind

TRACE_HEADERS = (b"traceparent", b"tracestate")
EXPORT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
tracer = trace.get_tracer("cradle")
# FastAPI's own telemetry, off: one span per hop is ours (with the route the gateway matched, which
# FastAPI never sees), its per-dependency spans would cost on every request, and the metrics are
# Prometheus's (shared/observability.py).
FASTAPI_TELEMETRY_OFF: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


# True once `configure_tracing` installed a sampler that records only what a sampled parent asks for.
_only_sampled_parents_record = False


def configure_tracing(service: str) -> None:
    """Once per process (several apps in one test process share the first provider)."""
    global _only_sampled_parents_record
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    exporting = any(os.environ.get(name) for name in EXPORT_VARIABLES)
    # Nothing exported: a trace started here is not recorded (its ids are still made and carried),
    # which costs a fraction of a recorded span; a caller's sampled `traceparent` is still followed.
    # OTEL_TRACES_SAMPLER, when set, decides instead (the SDK reads it).
    sampler = None if exporting or os.environ.get("OTEL_TRACES_SAMPLER") else ParentBased(ALWAYS_OFF)
    provider = TracerProvider(resource=Resource.create({"service.name": service}), sampler=sampler)
    _only_sampled_parents_record = sampler is not None
    if exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


async def flush_traces(timeout_seconds: float = 5.0) -> None:
    """At a process's stop: send the spans its exporter still holds (a batch waits up to 5 s, and
    the last requests' spans would otherwise go with the process). Bounded, off the event loop."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        await asyncio.to_thread(provider.force_flush, int(timeout_seconds * 1000))


def new_trace_fields(name: str) -> dict[str, str]:
    """The `traceparent` of a trace of its own, for work no request or event caused (an event a
    command writes): a root span started and ended here, recorded as this process's sampler decides.
    A process with no tracer provider of the SDK's (a command) makes the ids as the SDK would, not
    sampled, so that the event still has a trace to carry."""
    span = tracer.start_span(name, context=Context())
    span.end()
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    if "traceparent" in carrier:
        return {"traceparent": carrier["traceparent"]}
    ids = RandomIdGenerator()
    return {"traceparent": f"00-{ids.generate_trace_id():032x}-{ids.generate_span_id():016x}-00"}


def context_from(traceparent: str | bytes | None, tracestate: str | bytes | None = None) -> Context:
    """The remote parent a `traceparent` names (an empty context when absent or malformed)."""
    carrier: dict[str, str] = {}
    if traceparent:
        carrier["traceparent"] = (
            traceparent.decode("latin-1") if isinstance(traceparent, bytes) else traceparent
        )
        if tracestate:
            carrier["tracestate"] = (
                tracestate.decode("latin-1") if isinstance(tracestate, bytes) else tracestate
            )
    return propagate.extract(carrier) if carrier else Context()


def may_record(parent: Context) -> bool:
    """False when a span started under `parent` would certainly not be recorded: this process records
    only what a sampled parent asks for, and this parent is not one. For a hot path whose span would
    only be started and ended (the sender's attempts: no child span, no log line, no ids carried on)."""
    if not _only_sampled_parents_record:
        return True
    return bool(trace.get_current_span(parent).get_span_context().trace_flags.sampled)


def context_from_headers(headers: Iterable[tuple[bytes, bytes]]) -> Context:
    found = dict((name, value) for name, value in headers if name in TRACE_HEADERS)
    return context_from(found.get(b"traceparent"), found.get(b"tracestate"))


def current_fields() -> dict[str, str]:
    """`traceparent` (and `tracestate`) of the current span, for an HTTP request or a CloudEvent."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k: v for k, v in carrier.items() if k in ("traceparent", "tracestate")}


def current_headers() -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value.encode("latin-1")) for name, value in current_fields().items()]


def start_server_span(name: str, parent: Context, attributes: dict[str, str]) -> tuple[Span, object]:
    """A SERVER span made current until `end_server_span`: for ASGI code that cannot wrap its
    whole body in a `with` block."""
    span = tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)
    token = otel_context.attach(trace.set_span_in_context(span))
    return span, token


def end_server_span(span: Span, token: object, *, name: str, status: int) -> None:
    span.update_name(name)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(trace.StatusCode.ERROR)
    otel_context.detach(token)  # type: ignore[arg-type]
    span.end()


@contextmanager
def consumer_span(name: str, parent: Context, attributes: dict[str, str]) -> Iterator[Span]:
    """Handling an event: a child of the producer's context, and linked to it (the producer's span
    may have ended long before, or the event be a replay)."""
    producer = trace.get_current_span(parent).get_span_context()
    links = [Link(producer)] if producer.is_valid else []
    with tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.CONSUMER, links=links, attributes=attributes
    ) as span:
        yield span


def trace_id_of(span: Span) -> str | None:
    span_context = span.get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None
