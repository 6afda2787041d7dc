"""Hostile values in every write route's body, and in every query parameter that takes a date or a
time, on each backend (FUZZ_BACKENDS): never a server error, never an exception that escapes.

A table, not a search: the NUL character and other control characters, lone surrogates, a string
far past any limit, years 1 and 9999 with offsets, naive and numeric times, integers past 64 bits,
NaN and infinities, nesting deep enough to break a parser. Each lands in an otherwise valid body —
one that schemathesis draws from the document, aimed at the seeded city's objects, and sent by a
caller who gets past the scope checks — one field at a time, so the value reaches the validation,
the service and the database behind it. A 10 MB body goes once to each service: a 413.

    .venv/bin/python -m pytest tests/fuzz/test_models.py                            # SQLite, ~1 min
    FUZZ_BACKENDS=sqlite,postgres .venv/bin/python -m pytest tests/fuzz/test_models.py
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis import GenerationMode

from tests.fuzz.conftest import FuzzCity
from tests.fuzz.schema import ANONYMOUS_ONLY, SEED, seeded_values, strategy

WRITE_METHODS = ("POST", "PUT", "PATCH")
CASES_PER_OPERATION = 1
# Callers tried in this order for each operation: the first whose valid body gets past the scope
# and object checks carries the hostile ones.
CALLERS = ("admin", "bureau", "district", "operator", "parent", "app")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")

TEXT: list[Any] = [
    "\x00",
    "before\x00after",
    "\ud800",  # a lone surrogate (json.dumps writes it escaped; Python's parser gives it back)
    "\udfff tail",
    "\x1b[31mred\x1b[0m",
    "\u202e\u200b",  # right-to-left override, zero-width space: printable, allowed
    "x" * 100_000,
    "",
    "   ",
]
TIMES: list[Any] = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-12:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "2026-11-28T09:30:00",  # naive
    "2026-02-30T09:30:00+08:00",
    0,
    "1700000000",
]
DATES: list[Any] = ["0001-01-01", "9999-12-31", "0000-00-00", "1899-12-31", "2026-02-30", 0, "20261128"]
NUMBERS: list[Any] = [10**30, -(10**30), 2**63, -(2**63) - 1, math.nan, math.inf, -math.inf, 1e308, -0.0]


def deep(levels: int) -> Any:
    value: Any = "leaf"
    for level in range(levels):
        value = {"a": value} if level % 2 else [value]
    return value


STRUCTURE: list[Any] = [deep(20), deep(200), [None] * 10_000, {}, []]


def hostile_values(value: Any) -> list[Any]:
    """What to put where the valid body had `value`: by the value's kind."""
    if isinstance(value, bool):
        return [0, "true", None, *STRUCTURE[:2]]
    if isinstance(value, int | float):
        return NUMBERS + ["1e400", *STRUCTURE[:2]]
    if isinstance(value, str):
        if _TIME.match(value):
            return TIMES + TEXT[:3]
        if _DATE.match(value):
            return DATES + TEXT[:3]
        return TEXT + [10**30, *STRUCTURE[:2]]
    return STRUCTURE + TEXT[:3]


def leaves(body: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every field of the body (and of its nested objects, and of each list's first item)."""
    if isinstance(body, dict):
        for key, value in body.items():
            yield (*path, key), value
            yield from leaves(value, (*path, key))
    elif isinstance(body, list) and body:
        yield (*path, 0), body[0]
        yield from leaves(body[0], (*path, 0))


def replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(body, dict):
        return {**body, head: replaced(body[head], rest, value)}
    return [replaced(body[0], rest, value), *body[1:]]


def date_formats(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        if schema.get("format") in ("date", "date-time"):
            found.add(schema["format"])
        for value in schema.values():
            found |= date_formats(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= date_formats(value)
    return found


@dataclass
class Sent:
    label: str
    where: str
    value: str
    status: int
    body: str


async def _send(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    query: dict[str, Any] | None,
    content: bytes | None,
    headers: dict[str, str],
) -> tuple[int, str]:
    if content is not None:
        headers = {**headers, "content-type": "application/json"}
    response = await client.request(method, path, params=query, content=content, headers=headers)
    return response.status_code, response.text[:300]


class Prober:
    def __init__(self, city: FuzzCity) -> None:
        self.city = city
        self.schema = schemathesis.openapi.from_asgi("/openapi.json", city.bridge)
        self.values = seeded_values(city)
        self.failures: list[Sent] = []
        self.calls = 0

    def send(
        self, label: str, where: str, value: Any, method: str, path: str, query: Any, body: Any, headers: Any
    ) -> int:
        if isinstance(body, bytes) or body is None:
            content = body
        else:
            content = json.dumps(body, allow_nan=True).encode()
        status, text = self.city.portal.call(
            _send, self.city.stack.client, method, path, query, content, headers
        )
        self.calls += 1
        if status >= 500:
            self.failures.append(Sent(label, where, repr(value)[:80], status, text))
        return status

    def cases(self, operation: Any) -> list[Any]:
        drawn: list[Any] = []

        @seed(SEED)
        @given(case=strategy(operation, GenerationMode.POSITIVE, self.values))
        @settings(
            max_examples=CASES_PER_OPERATION,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def draw(case: Any) -> None:
            drawn.append(case)

        draw()
        return drawn

    def caller_for(self, operation: Any, case: Any) -> dict[str, str]:
        """The first caller the operation lets through with the valid body (else EDU's bureau
        client, which holds every scope)."""
        if operation.path.startswith(ANONYMOUS_ONLY):
            return {}
        body = case.body if isinstance(case.body, dict | list) else None
        for kind in CALLERS:
            headers = self.city.callers[kind]
            status = self.send(
                operation.label,
                "valid",
                None,
                case.method,
                case.formatted_path,
                case.query,
                body,
                headers,
            )
            if status not in (401, 403, 404):
                return headers
        return self.city.callers["bureau"]

    def probe_bodies(self, operation: Any) -> None:
        for case in self.cases(operation):
            if not isinstance(case.body, dict | list):
                continue
            headers = self.caller_for(operation, case)
            for path, value in leaves(case.body):
                for hostile in hostile_values(value):
                    self.send(
                        operation.label,
                        "body." + ".".join(map(str, path)),
                        hostile,
                        case.method,
                        case.formatted_path,
                        case.query,
                        replaced(case.body, path, hostile),
                        headers,
                    )
            # The whole body nested deep (written out: past Python's own encoder's depth).
            for hostile in (b"[" * 40 + b"]" * 40, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
                self.send(
                    operation.label, "body", "deep", case.method, case.formatted_path, None, hostile, headers
                )

    def probe_query(self, operation: Any) -> None:
        params = [p for p in operation.query if date_formats(p.definition.get("schema", {}))]
        if not params:
            return
        case = self.cases(operation)[0]
        headers = self.caller_for(operation, case)
        for param in params:
            kinds = date_formats(param.definition.get("schema", {}))
            for hostile in (TIMES if "date-time" in kinds else DATES) + TEXT[:2]:  # a URL holds no surrogate
                query = {**(case.query or {}), param.name: hostile}
                self.send(
                    operation.label,
                    f"query.{param.name}",
                    hostile,
                    case.method,
                    case.formatted_path,
                    query,
                    None,
                    headers,
                )


@pytest.fixture(scope="module")
def prober(fuzz_city: FuzzCity) -> Prober:
    return Prober(fuzz_city)


def test_hostile_values_in_every_write_body_are_never_a_server_error(prober: Prober) -> None:
    prober.failures.clear()
    escaped_before = len(prober.city.bridge.escaped)
    operations = [op.ok() for op in prober.schema.get_all_operations()]
    written = [op for op in operations if op.method.upper() in WRITE_METHODS and op.body]
    assert len(written) > 40  # every service's write routes are in the merged document
    for operation in written:
        prober.probe_bodies(operation)
    report = "\n".join(f"{f.label} {f.where}={f.value} → {f.status}: {f.body}" for f in prober.failures[:30])
    assert not prober.failures, f"{len(prober.failures)} server errors in {prober.calls} calls:\n{report}"
    assert prober.city.bridge.escaped[escaped_before:] == []
    assert prober.calls > 1_500  # the table reached every field


def test_hostile_dates_and_times_in_queries_are_never_a_server_error(prober: Prober) -> None:
    operations = [op.ok() for op in prober.schema.get_all_operations()]
    prober.failures.clear()
    probed = [op for op in operations if any(date_formats(p.definition.get("schema", {})) for p in op.query)]
    assert probed, "no query parameter takes a date or a time: has the document changed?"
    for operation in probed:
        prober.probe_query(operation)
    report = "\n".join(f"{f.label} {f.where}={f.value} → {f.status}: {f.body}" for f in prober.failures[:30])
    assert not prober.failures, f"{len(prober.failures)} server errors in {prober.calls} calls:\n{report}"


@pytest.mark.parametrize(
    "path", ["/v1/facilities", "/v1/practitioners", "/v1/cctv-events", "/v1/families", "/v1/admin/clients"]
)
def test_ten_megabytes_is_a_413_through_the_gateway(prober: Prober, path: str) -> None:
    body = {"name": "x" * (10 * 1024 * 1024)}
    # A caller the path lets in, so that the size is what refuses it.
    caller = prober.city.callers["admin" if path.startswith("/v1/admin/") else "bureau"]
    status = prober.send(path, "body", "10 MB", "POST", path, None, body, caller)
    assert status == 413
