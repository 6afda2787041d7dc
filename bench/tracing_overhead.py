"""What tracing adds to each hop, in microseconds, with the process's tracer provider as deployed
(SDK, no exporter unless OTEL_EXPORTER_OTLP_ENDPOINT is set): the gateway's span (read the caller's
traceparent, start, hand the service its own, end; a service's request span costs the same), the
relay's publish span (parse the stored CloudEvent for its traceparent) and a consumer's span with
its link — each for a trace the caller did not sample (no exporter: not recorded) and one it did
(recorded, as every span is with an exporter). The baseline, measured in the same run, is the work
the hop does without a span: scanning the headers and building the same attribute dict.

    .venv/bin/python bench/tracing_overhead.py [--rounds 200000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable

from shared import tracing

SAMPLED = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
UNSAMPLED = SAMPLED[:-2] + "00"
HEADERS = [
    (b"host", b"gateway"),
    (b"authorization", b"Bearer x" * 20),
    (b"content-type", b"application/json"),
    (b"traceparent", SAMPLED.encode()),
    (b"x-request-id", b"bench-request"),
]
PAYLOAD = json.dumps(
    {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "type": "cradle.registry.facility.submitted",
        "traceparent": SAMPLED,
        "data": {"facility_id": str(uuid.uuid4()), "name": "托育点" * 10},
    }
)


def baseline() -> None:
    found = [value for name, value in HEADERS if name in tracing.TRACE_HEADERS]
    attributes = {"cradle.service": "gateway", "cradle.request_id": "bench-request", "n": str(len(found))}
    assert attributes


def gateway_hop() -> None:
    span, token = tracing.start_server_span(
        "gateway POST", tracing.context_from_headers(HEADERS), {"cradle.service": "gateway"}
    )
    tracing.current_headers()
    tracing.end_server_span(span, token, name="gateway POST ^/v1/facilities", status=201)


def publish_span() -> None:
    envelope = json.loads(PAYLOAD)
    parent = tracing.context_from(envelope.get("traceparent"), envelope.get("tracestate"))
    tracing.tracer.start_span("publish", context=parent).end()


def consumer_hop() -> None:
    with tracing.consumer_span(
        "process", tracing.context_from(HEADERS[3][1]), {"cradle.service": "workforce"}
    ):
        pass


def per_call_us(function: Callable[[], None], rounds: int) -> float:
    """Median of five timed runs of `rounds` calls, in µs per call."""
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            function()
        runs.append((time.perf_counter() - started) / rounds * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100_000)
    args = parser.parse_args()
    global PAYLOAD
    tracing.configure_tracing("bench")
    with open("/proc/loadavg") as loadavg:
        print(f"load average: {loadavg.read().split()[0]}")
    base = per_call_us(baseline, args.rounds)
    print(f"{'baseline (header scan, attributes)':<44} {base:8.2f} µs")
    sampled_payload = PAYLOAD
    for label, traceparent in (("not sampled", UNSAMPLED), ("sampled", SAMPLED)):
        HEADERS[3] = (b"traceparent", traceparent.encode())
        PAYLOAD = sampled_payload.replace(SAMPLED, traceparent)
        for name, function in (
            ("gateway hop span", gateway_hop),
            ("relay publish span (with JSON parse)", publish_span),
            ("consumer span with link", consumer_hop),
        ):
            cost = per_call_us(function, args.rounds)
            print(f"{name + ', ' + label:<44} {cost:8.2f} µs  ({cost / base:.1f}x the baseline)")


if __name__ == "__main__":
    main()
