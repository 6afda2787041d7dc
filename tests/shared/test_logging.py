"""What reaches the log: never a secret (by key, in text, in a traceback's locals), and a flood of
one error as one line per window with a count of what was suppressed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from shared.logging import RateLimiter, configure_logging

TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Iterator[Captured]:
    yield Captured(capsys)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


class Captured:
    """What the process wrote to stderr (where the log goes), read once."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.text = ""

    def getvalue(self) -> str:
        self.text += self.capsys.readouterr().err
        return self.text


def lines(out: Captured) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def fail_with_headers() -> None:
    headers = {"authorization": f"Bearer {TOKEN}", "x-cradle-identity": TOKEN}  # noqa: F841 — a local
    raise RuntimeError("the handler broke")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_no_secret_reaches_the_log(captured: Captured, fmt: str) -> None:
    configure_logging(service="t", fmt=fmt)
    log = structlog.get_logger("t")
    log.warning(
        "request_seen",
        headers={"Authorization": f"Bearer {TOKEN}", "X-Cradle-Identity": TOKEN, "Cookie": "s=1"},
        raw_headers=[(b"x-cradle-identity", TOKEN.encode()), (b"accept", b"*/*")],
        client_secret="hunter2-secret",
        password="correct horse",
        note=f"called with Bearer {TOKEN} and {TOKEN}",
    )
    try:
        fail_with_headers()
    except RuntimeError:
        log.exception("unhandled_error", path="/v1/cctv-events")
    text = captured.getvalue()
    for secret in (TOKEN, "eyJhbGciOiJFZERTQSJ9", "hunter2-secret", "correct horse", "s=1"):
        assert secret not in text
    assert "[redacted]" in text
    assert "the handler broke" in text  # the traceback is still there, without its locals
    assert "*/*" in text  # what is not a secret stays


def test_tracebacks_carry_no_locals(captured: Captured) -> None:
    configure_logging(service="t", fmt="json")
    try:
        fail_with_headers()
    except RuntimeError:
        structlog.get_logger("t").exception("unhandled_error")
    (line,) = lines(captured)
    frames = line["exception"][0]["frames"]  # type: ignore[index]
    assert frames and all(not frame.get("locals") for frame in frames)


def test_a_flood_of_one_error_is_one_line_per_window(captured: Captured) -> None:
    configure_logging(service="t", fmt="json")
    log = structlog.get_logger("t")
    for n in range(500):
        structlog.contextvars.bind_contextvars(request_id=f"r{n}")  # differs per request: still one error
        log.error("unhandled_error", path="/v1/cctv-events", error="RecursionError")
    log.error("unhandled_error", path="/v1/other", error="RecursionError")  # another error: its own line
    log.info("request_done")  # information is never limited
    log.info("request_done")
    assert [(line["event"], line.get("path")) for line in lines(captured)] == [
        ("unhandled_error", "/v1/cctv-events"),
        ("unhandled_error", "/v1/other"),
        ("request_done", None),
        ("request_done", None),
    ]


def test_the_next_line_after_a_window_counts_the_suppressed() -> None:
    now = [0.0]
    limiter = RateLimiter(10, clock=lambda: now[0])
    event = {"event": "ingest_store_failed", "error": "boom"}
    assert limiter(None, "warning", dict(event)) == event
    for _ in range(41):
        with pytest.raises(structlog.DropEvent):
            limiter(None, "warning", dict(event))
    now[0] = 10.5
    assert limiter(None, "warning", dict(event)) == {**event, "suppressed": 41}
    with pytest.raises(structlog.DropEvent):
        limiter(None, "warning", dict(event))
    assert limiter(None, "warning", {"event": "ingest_store_failed", "error": "other"})["error"] == "other"
