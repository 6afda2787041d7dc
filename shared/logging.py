"""structlog set up once per process: JSON lines in production, readable lines under `cradle up`.

Two guards run on every line. Secrets never reach the log: values under secret-looking keys
(authorization, x-cradle-identity, cookie, client_secret, password, token…) are replaced, bearer
and JWT-shaped strings are masked wherever they appear (tracebacks included), and tracebacks are
rendered without local variables (which held the request's headers). And a flood of one error is
one line per `RATE_WINDOW_SECONDS`: a repeat of the same event with the same error is dropped and
counted, and the next line that gets through says how many were suppressed."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

REDACTED = "[redacted]"
# Key names (lower case, `-` read as `_`) whose values are secrets wherever they appear.
SECRET_KEYS = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "x_cradle_identity",
        "identity_token",
        "cookie",
        "set_cookie",
        "client_secret",
        "secret",
        "password",
        "new_password",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "x_api_key",
        "pii_keys",
        "pii_hmac_key",
        "internal_signing_key",
    }
)
_SECRET_SUFFIXES = ("_secret", "_password", "_token", "_key")
# A bearer credential, or a JWT (our internal identity is one), anywhere in a string.
_SECRET_TEXT = re.compile(
    r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+|\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
)
_MAX_NESTING = 8  # values are scrubbed this deep; deeper ones are summarised, never rendered
RATE_WINDOW_SECONDS = 10.0
_RATE_MAX_KEYS = 4096
_RATE_LEVELS = frozenset({"warning", "error", "critical", "exception"})


def is_secret_key(key: object) -> bool:
    name = str(key).lower().replace("-", "_")
    return name in SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


def scrub(value: Any, depth: int = 0) -> Any:
    """The value with secrets masked: under secret keys, and bearer/JWT text in any string."""
    if isinstance(value, str):
        return _SECRET_TEXT.sub(lambda m: f"{m.group(1) or 'jwt'} {REDACTED}", value)
    if isinstance(value, bytes):
        return scrub(value.decode("utf-8", "replace"), depth)
    if depth >= _MAX_NESTING and isinstance(value, Mapping | list | tuple):
        return f"<{type(value).__name__} nested deeper than {_MAX_NESTING}>"
    if isinstance(value, Mapping):
        return {k: REDACTED if is_secret_key(k) else scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if value and all(isinstance(p, tuple | list) and len(p) == 2 for p in value):
            # Header lists: [(name, value), …]
            named = [(_text(n), v) for n, v in value]
            return [(n, REDACTED) if is_secret_key(n) else (n, scrub(v, depth + 1)) for n, v in named]
        return [scrub(v, depth + 1) for v in value]
    return value


def _text(value: object) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def redact_secrets(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    for key, value in list(event_dict.items()):
        if is_secret_key(key):
            event_dict[key] = REDACTED
        elif key != "exc_info":
            event_dict[key] = scrub(value)
    return event_dict


class RateLimiter:
    """Drops a warning or error identical (same event, fields and exception) to one let through in
    the last `seconds`, counting it; the next line of that kind carries `suppressed=<count>`."""

    def __init__(self, seconds: float = RATE_WINDOW_SECONDS, *, clock: Any = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        if method not in _RATE_LEVELS or self.seconds <= 0:
            return event_dict
        key = self.key(event_dict)
        now = self.clock()
        with self._lock:
            seen = self._last.get(key)
            if seen is not None and now - seen[0] < self.seconds:
                self._last[key] = (seen[0], seen[1] + 1)
                raise structlog.DropEvent
            if len(self._last) >= _RATE_MAX_KEYS:
                self._forget(now)
            self._last[key] = (now, 0)
        if seen is not None and seen[1]:
            event_dict["suppressed"] = seen[1]
        return event_dict

    def _forget(self, now: float) -> None:
        for key in [k for k, (at, _) in self._last.items() if now - at >= self.seconds]:
            del self._last[key]
        if len(self._last) >= _RATE_MAX_KEYS:  # a storm of distinct errors: start afresh
            self._last.clear()

    @staticmethod
    def key(event_dict: EventDict) -> str:
        parts = [str(event_dict.get("event"))]
        for name, value in sorted(event_dict.items(), key=lambda kv: str(kv[0])):
            if name in ("event", "timestamp", "exc_info"):
                continue
            parts.append(f"{name}={_short(value)}")
        exc = event_dict.get("exc_info")
        if exc is True:
            exc = sys.exc_info()[1]
        elif isinstance(exc, tuple):
            exc = exc[1]
        if isinstance(exc, BaseException):
            parts.append(f"{type(exc).__name__}:{str(exc)[:200]}")
        return "\x1f".join(parts)


def _short(value: Any) -> str:
    try:
        return repr(value)[:200]
    except Exception:  # a repr that fails must not take the log line down
        return type(value).__name__


def configure_logging(*, service: str, fmt: str = "json", level: str = "INFO") -> None:
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        if fmt == "console"
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    # Locals in a traceback hold the request (its headers, the identity token): never rendered.
    tracebacks: structlog.typing.Processor = (
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        if fmt == "json"
        else structlog.processors.format_exc_info
    )
    structlog.configure(
        processors=[
            # Before the context is merged: a request id must not make each repeat look new.
            RateLimiter(),
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            tracebacks,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format=f"{service} %(name)s %(message)s")
