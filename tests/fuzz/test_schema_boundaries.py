"""The schema fuzzer's coverage phase (tests/fuzz/schema.py): every boundary case once."""

from __future__ import annotations

import pytest
from schemathesis.config._checks import NegativeDataRejectionConfig
from schemathesis.specs.openapi.checks import negative_data_rejection

from tests.fuzz.conftest import FuzzCity
from tests.fuzz.schema import ANONYMOUS_ONLY, CHECKS, REJECTED, Fuzzer


@pytest.fixture(scope="module")
def fuzzer(fuzz_city: FuzzCity) -> Fuzzer:
    return Fuzzer(fuzz_city)


def test_every_boundary_keeps_to_the_document(fuzzer: Fuzzer) -> None:
    """Schemathesis's coverage phase (deterministic: every limit, missing and mistyped fields,
    unexpected methods; about 5,600 cases) as EDU's bureau client with every scope, whom no scope or
    object check stops (the admin client holds no write scope). Its
    negative cases (`on=0` for a date, a number past its maximum…) must be refused with a 4xx."""
    kind = "bureau"
    headers = fuzzer.city.callers[kind]
    fuzzer.schema.config.checks.negative_data_rejection = NegativeDataRejectionConfig(
        expected_statuses=REJECTED
    )
    escaped_before = len(fuzzer.city.bridge.escaped)
    found: dict[tuple[str, ...], str] = {}
    calls = 0
    checks = [*CHECKS, negative_data_rejection]
    for operation in fuzzer.operations():
        if operation.path.startswith(ANONYMOUS_ONLY):
            calls += fuzzer.boundaries(operation, {}, found, checks)
        else:
            calls += fuzzer.boundaries(operation, headers, found, checks)
    fuzzer.verdict(kind, calls, found, escaped_before)
