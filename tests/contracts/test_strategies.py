"""The contract strategies' direct draws for common patterns (tests/contracts/strategies.py) stay
within their patterns, and reach both ends of each."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings

from tests.contracts.strategies import PATTERNS


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_each_direct_draw_matches_its_pattern(pattern: str) -> None:
    @settings(max_examples=200, database=None)
    @given(value=PATTERNS[pattern])
    def matches(value: str) -> None:
        assert re.fullmatch(pattern, value), value

    matches()


@pytest.mark.parametrize(
    ("pattern", "edges"),
    [
        ("^[0-9]{6}$", {"000000", "999999"}),
        ("^[0-9]{9}$", {"000000000", "999999999"}),
        ("^([01][0-9]|2[0-3]):[0-5][0-9]$", {"00:", "23:", ":00", ":59"}),
    ],
)
def test_the_draws_reach_the_patterns_edges(pattern: str, edges: set[str]) -> None:
    """The lowest and highest values (of each part), as `from_regex` would give them: a column
    too short for "999999999" is what the contract tests are there to find."""
    seen: set[str] = set()

    @settings(max_examples=300, database=None, derandomize=True)
    @given(value=PATTERNS[pattern])
    def collect(value: str) -> None:
        seen.update(edge for edge in edges if edge in value)

    collect()
    assert seen == edges, f"{pattern}: {sorted(edges - seen)} never drawn"
