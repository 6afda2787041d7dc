"""Schemathesis against the gateway's merged OpenAPI document, as each kind of caller: no server
error, and every reply (status code, content type, body, headers) is one the document describes.

Each operation gets a budget of schema-valid and schema-invalid cases per kind of caller (BUDGET,
times FUZZ_SCALE), drawn from a fixed seed (FUZZ_SEED) so a run repeats; two thirds of them are
aimed at the seeded city's real objects (path parameters, and the ids inside bodies and queries),
so the fuzzer gets past the 404s into the handlers. Failures are gathered over all operations and
reported together, each with a curl command that reproduces it. FUZZ_STATS=1 prints the status
codes each operation answered. Then schemathesis's coverage phase adds every boundary case once,
and a negative phase sends cases that break the document (a wrong type, a value past a limit, an
unknown property): both must be refused with a 4xx (`negative_data_rejection`), so what the
document forbids the services refuse.

    .venv/bin/python -m pytest tests/fuzz/test_schema_*.py                    # SQLite, ~4 min

The tests are in three files (callers with wide rights, confined callers and refusals, boundaries),
each with a stack of its own, so a parallel run spreads them over its workers.
    FUZZ_BACKENDS=sqlite,postgres FUZZ_SCALE=2 .venv/bin/python -m pytest tests/fuzz
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fuzz.conftest import FuzzCity

# Examples per operation (schema-valid, schema-invalid) for each kind of caller, times FUZZ_SCALE.
# Invalid input is refused before the caller's rights matter much, and generating it is slow: two
# kinds get it (one that sees everything, one confined to its objects).
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
SEED = int(os.environ.get("FUZZ_SEED", "20261128"))
BUDGET = {
    "admin": (5, 0),
    "bureau": (5, 3),
    "district": (5, 0),
    "operator": (5, 2),
    "parent": (3, 0),
    "app": (2, 0),
    "anonymous": (2, 0),
}
ANONYMOUS_BUDGET = (8, 4)  # the token and parent-account paths, fuzzed once, without a token
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# The negative phase: cases that break the document somewhere (a wrong type, a value past a limit, a
# missing field, an unknown property…), each of which must be refused with a 4xx, never accepted and
# never a 5xx. A budget per operation (times FUZZ_SCALE) keeps it near a minute.
NEGATIVE_BUDGET = 4
# Seconds a fuzzed call may take. The stack answers on the test's own event loop, shared with the
# fuzzer's bridge, on two cores that a second suite may be using: schemathesis's 10 s default was
# reached by an ordinary list under that load. A hang still fails; slowness is not what this finds.
REQUEST_TIMEOUT = 60
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
# Who calls: every kind of client (each holding every scope it may be granted, so the fuzzer gets
# past the scope checks), a parent of the app, and nobody (no token).
KINDS = list(BUDGET)
# The gateway's own token and parent-account paths do not depend on the caller: fuzzed once,
# anonymously (each call is an argon2 hash).
ANONYMOUS_ONLY = ("/v1/auth/",)
# Names of ids (path parameters, body and query fields) → the seeded objects they may name.
SEEDED = {
    "facility_id": ["facility"],
    "camera_id": ["camera"],
    "alert_id": ["alert", "alert_2"],
    "incident_id": ["incident"],
    "inspection_id": ["inspection"],
    "inspector_id": ["inspector"],
    "inspector_ids": ["inspector"],
    "practitioner_id": ["practitioner", "banned_practitioner"],
    "practitioner_ids": ["practitioner"],
    "abuser_practitioner_ids": ["practitioner"],
    "responsible_manager_ids": ["practitioner"],
    "check_id": ["background_check"],
    "employment_id": ["employment"],
    "ban_id": ["ban"],
    "station_id": ["station"],
    "place_id": ["place"],
    "family_id": ["family"],
    "family_ids": ["family"],
    "visit_id": ["home_visit"],
    "session_id": ["session"],
    "booking_id": ["booking"],
    "resource_id": ["resource"],
    "plan_id": ["plan"],
    "client_id": ["client"],
}


def seeded_values(city: FuzzCity) -> dict[str, list[str]]:
    ids = {**city.estate.ids, **city.guidance.ids}
    return {name: [ids[k] for k in kinds if k in ids] for name, kinds in SEEDED.items()}


def aimed(values: dict[str, list[str]]) -> Callable[[Any], Any]:
    """Replace the ids a case names (body and query fields) with seeded ones, one draw each."""

    def replace(container: Any, choose: Callable[[list[str]], str]) -> Any:
        if isinstance(container, list):  # a batch (CCTV events)
            return [replace(item, choose) for item in container]
        if not isinstance(container, dict):
            return container
        out = dict(container)
        for name, value in container.items():
            options = values.get(name)
            if not options:
                continue
            if isinstance(value, str):
                out[name] = choose(options)
            elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                out[name] = [choose(options) for _ in value]
        return out

    def apply(drawn: tuple[Any, int]) -> Any:
        case, salt = drawn
        choose = lambda options: options[salt % len(options)]  # noqa: E731
        case.body = replace(case.body, choose)
        if case.query:
            case.query = replace(case.query, choose)
        return case

    return apply


def strategy(operation: Any, mode: GenerationMode, values: dict[str, list[str]]) -> Any:
    """A third of the cases as generated, the rest aimed at the seeded objects."""
    generated = operation.as_strategy(generation_mode=mode)
    names = [p.name for p in operation.path_parameters]
    if names and all(values.get(n) for n in names):
        combos = [{n: values[n][i % len(values[n])] for n in names} for i in range(2)]
        at_objects = st.one_of(
            *(operation.as_strategy(generation_mode=mode, path_parameters=c) for c in combos)
        )
    else:
        at_objects = generated
    if mode.is_positive:
        at_objects = st.tuples(at_objects, st.integers(0, 7)).map(aimed(values))
    return st.one_of(generated, at_objects, at_objects)


class Fuzzer:
    """The merged document as schemathesis read it through the gateway, and the cases drawn from it
    (kept for the module: every kind of caller is sent the same ones)."""

    def __init__(self, city: FuzzCity) -> None:
        self.city = city
        # The merged document takes seconds to build on a loaded machine: the same patience as a call.
        self.schema = schemathesis.openapi.from_asgi("/openapi.json", city.bridge, timeout=REQUEST_TIMEOUT)
        self.values = seeded_values(city)
        self.drawn: dict[tuple[str, GenerationMode], list[Any]] = {}
        # Status codes seen per operation: FUZZ_STATS=1 prints them (did the cases reach the handlers?)
        self.statuses: dict[str, Counter[int]] = defaultdict(Counter)

    def verdict(self, kind: str, calls: int, found: dict[tuple[str, ...], str], escaped_before: int) -> None:
        """Fail with every problem found (and any exception that escaped the gateway)."""
        if os.environ.get("FUZZ_STATS"):
            print(f"\n{kind}: {calls} calls")
            for label, seen in sorted(self.statuses.items()):
                print(f"  {label:70} {dict(sorted(seen.items()))}")
        self.statuses.clear()
        escaped = self.city.bridge.escaped[escaped_before:]
        report = "\n\n".join(f"{' '.join(key)}\n{text}" for key, text in sorted(found.items()))
        assert not found and not escaped, (
            f"{len(found)} problem(s) in {calls} calls as {kind}:\n\n{report}\n\n" + "\n".join(escaped[:5])
        )

    def operations(self) -> list[Any]:
        return [result.ok() for result in self.schema.get_all_operations()]

    def check(
        self,
        operation: Any,
        mode: str,
        case: Any,
        headers: dict[str, str],
        found: dict[tuple[str, ...], str],
        checks: list[Any] = CHECKS,
    ) -> None:
        """Send the case; each kind of failure (operation, mode, check, status) is kept once, with a
        curl command that reproduces it."""
        response = case.call(headers=headers, timeout=REQUEST_TIMEOUT)
        self.statuses[operation.label][response.status_code] += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                name = (operation.label, mode, type(failure).__name__, str(response.status_code))
                found.setdefault(name, f"{failure.title}: {failure.message}\n{case.as_curl_command()}")

    def boundaries(
        self,
        operation: Any,
        headers: dict[str, str],
        found: dict[tuple[str, ...], str],
        checks: list[Any] = CHECKS,
    ) -> int:
        """Schemathesis's coverage phase: for every parameter and body field, the values at and just
        past its limits, missing required ones, wrong types, each once (no randomness). Where the
        path is not what a case varies, it names the seeded objects."""
        config = self.schema.config.generation_for(operation=operation, phase="coverage")
        names = [p.name for p in operation.path_parameters]
        calls = 0
        cases = self.schema.iter_coverage_cases(
            operation, generation_modes=list(GenerationMode), generation_config=config
        )
        for n, case in enumerate(cases):
            components = case.meta.components if case.meta else {}
            path_mode = components.get(ParameterLocation.PATH)
            if (
                names
                and all(self.values.get(k) for k in names)
                and (path_mode is None or path_mode.mode.is_positive)
            ):
                case.path_parameters = {k: self.values[k][n % len(self.values[k])] for k in names}
            calls += 1
            self.check(
                operation,
                f"coverage-{case.meta.generation.mode.value if case.meta else '?'}",
                case,
                headers,
                found,
                checks,
            )
        return calls

    def run(
        self,
        operation: Any,
        mode: GenerationMode,
        examples: int,
        headers: dict[str, str],
        found: dict[tuple[str, ...], str],
        checks: list[Any] = CHECKS,
    ) -> int:
        """`examples` cases of `mode`, drawn by hypothesis, sent as the caller `headers` names.
        Returns the number of calls."""
        cases = self.cases(operation, mode, examples)
        for case in cases:
            self.check(operation, mode.value, case, headers, found, checks)
        return len(cases)

    def cases(self, operation: Any, mode: GenerationMode, examples: int) -> list[Any]:
        """The first `examples` cases of the operation's seeded sequence. Drawn once per module and
        sent as every kind of caller: the seed made each kind's draws the same cases anyway, and
        drawing them was the largest part of a fuzzing run."""
        key = (operation.label, mode)
        kept = self.drawn.get(key)
        if kept is not None and len(kept) >= examples:
            return kept[:examples]
        drawn: list[Any] = []

        @seed(SEED)  # the same cases every run
        @given(case=strategy(operation, mode, self.values))
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.generate],  # no shrinking: every failure is reported as found
            suppress_health_check=list(HealthCheck),
        )
        def draw(case: Any) -> None:
            drawn.append(case)

        try:
            draw()
        except Unsatisfiable:
            # Nothing in the operation can be made invalid (no parameters, no body): no negative cases.
            if mode.is_positive:
                raise
        self.drawn[key] = drawn
        return drawn


def every_operation_as(kind: str, fuzzer: Fuzzer) -> None:
    """Every operation, its budget of cases as `kind` of caller; failures reported together."""
    headers = fuzzer.city.callers.get(kind, {})
    escaped_before = len(fuzzer.city.bridge.escaped)
    found: dict[tuple[str, ...], str] = {}
    calls = 0
    for operation in fuzzer.operations():
        budget = BUDGET[kind]
        if operation.path.startswith(ANONYMOUS_ONLY):
            if kind != "anonymous":
                continue
            budget = ANONYMOUS_BUDGET
        for mode, examples in zip((GenerationMode.POSITIVE, GenerationMode.NEGATIVE), budget, strict=True):
            if round(examples * SCALE):
                calls += fuzzer.run(operation, mode, round(examples * SCALE), headers, found)
    fuzzer.verdict(kind, calls, found, escaped_before)
