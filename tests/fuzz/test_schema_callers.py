"""The schema fuzzer (tests/fuzz/schema.py) as the callers with the widest rights: EDU's bureau
client, an operator and the admin client."""

from __future__ import annotations

import pytest

from tests.fuzz.conftest import FuzzCity
from tests.fuzz.schema import Fuzzer, every_operation_as


@pytest.fixture(scope="module")
def fuzzer(fuzz_city: FuzzCity) -> Fuzzer:
    return Fuzzer(fuzz_city)


@pytest.mark.parametrize("kind", ["bureau", "operator", "admin"])
def test_every_operation_keeps_to_the_document(kind: str, fuzzer: Fuzzer) -> None:
    every_operation_as(kind, fuzzer)
