"""The schema fuzzer (tests/fuzz/schema.py) as the confined callers (a district, a parent, the app,
nobody), and its negative phase: what the document forbids, the services refuse."""

from __future__ import annotations

import pytest
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config._checks import NegativeDataRejectionConfig
from schemathesis.specs.openapi.checks import negative_data_rejection

from tests.fuzz.conftest import FuzzCity
from tests.fuzz.schema import (
    ANONYMOUS_ONLY,
    NEGATIVE_BUDGET,
    REJECTED,
    SCALE,
    Fuzzer,
    every_operation_as,
)


@pytest.fixture(scope="module")
def fuzzer(fuzz_city: FuzzCity) -> Fuzzer:
    return Fuzzer(fuzz_city)


@pytest.mark.parametrize("kind", ["district", "parent", "app", "anonymous"])
def test_every_operation_keeps_to_the_document(kind: str, fuzzer: Fuzzer) -> None:
    every_operation_as(kind, fuzzer)


def test_every_schema_invalid_request_is_refused(fuzzer: Fuzzer) -> None:
    """What the document forbids, the services refuse: negative cases (as EDU's bureau client with
    every scope, whom no scope or object check stops before the validation) answered with a 4xx —
    a case that is accepted means the document promises more than the code checks, or the code
    accepts more than it documents."""
    kind = "bureau"
    headers = fuzzer.city.callers[kind]
    fuzzer.schema.config.checks.negative_data_rejection = NegativeDataRejectionConfig(
        expected_statuses=REJECTED
    )
    escaped_before = len(fuzzer.city.bridge.escaped)
    found: dict[tuple[str, ...], str] = {}
    calls = 0
    examples = max(1, round(NEGATIVE_BUDGET * SCALE))
    for operation in fuzzer.operations():
        anonymous = operation.path.startswith(ANONYMOUS_ONLY)
        calls += fuzzer.run(
            operation,
            GenerationMode.NEGATIVE,
            examples,
            {} if anonymous else headers,
            found,
            [not_a_server_error, negative_data_rejection],
        )
    fuzzer.verdict(kind, calls, found, escaped_before)
