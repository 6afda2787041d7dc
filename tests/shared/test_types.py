"""The request types every service shares: what each accepts, what it refuses, and that the refusal
is a validation error (a 422 at the edge), never an exception from deeper down."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.clock import Day, Timestamp
from shared.scalars import Flag, Integer, Number
from shared.text import Name, Payload, Text, line

CASES: list[tuple[Any, Any, Any]] = [
    # type, accepted as given → value, or refused (None)
    (Timestamp, "2026-11-28T09:30:00+08:00", datetime(2026, 11, 28, 1, 30, tzinfo=UTC)),
    (Timestamp, "1900-01-01T08:00:00+08:00", datetime(1900, 1, 1, tzinfo=UTC)),
    (Timestamp, "0001-01-01T00:00:00+14:00", None),
    (Timestamp, "9999-12-31T23:59:59-12:00", None),
    (Timestamp, "2200-01-01T00:00:00Z", None),
    (Timestamp, "2026-11-28T09:30:00", None),  # naive
    (Timestamp, 0, None),
    (Timestamp, "1700000000", None),
    (Day, "2026-11-28", date(2026, 11, 28)),
    (Day, "0001-01-01", None),
    (Day, "9999-12-31", None),
    (Day, "0", None),
    (Day, 0, None),
    (Name, "  徐汇区天平街道社区托育点 ", "徐汇区天平街道社区托育点"),
    (Name, "a\x00b", None),
    (Name, "two\nlines", None),
    (Name, "\x1b[31m", None),
    (Name, "", None),
    (Name, "x" * 201, None),
    (Text, "line one\nline two\ttabbed", "line one\nline two\ttabbed"),
    (Text, "a\x00b", None),
    (Text, "\ud800", None),
    (line(5), "\u202eabc", "\u202eabc"),  # printable formatting characters are text
    (
        Payload,
        {"区域": ["午睡室", 1, 2.5, None, {"k": True}]},
        {"区域": ["午睡室", 1, 2.5, None, {"k": True}]},
    ),
    (Payload, {"a": "\x00"}, None),
    (Payload, {"\ud800": 1}, None),
    (Payload, {"n": math.nan}, None),
    (Payload, {"n": 2**64}, None),
    (Flag, True, True),
    (Flag, 0, None),
    (Flag, "true", None),
    (Integer, 3, 3),
    (Integer, False, None),
    (Integer, "3", None),
    (Number, 3, 3.0),
    (Number, "3.5", None),
    (Number, math.inf, None),
]


@pytest.mark.parametrize(("kind", "given", "expected"), CASES)
def test_accepted_or_refused(kind: Any, given: Any, expected: Any) -> None:
    adapter = TypeAdapter(kind)
    if expected is None:
        with pytest.raises(ValidationError):
            adapter.validate_python(given)
    else:
        assert adapter.validate_python(given) == expected


def test_deep_payloads_are_refused_not_recursed_into() -> None:
    value: Any = 1
    for _ in range(500):
        value = {"a": value}
    with pytest.raises(ValidationError, match="deeper than 16"):
        TypeAdapter(Payload).validate_python(value)
