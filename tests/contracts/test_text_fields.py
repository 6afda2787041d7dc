"""Every string an event carries is text as the services' APIs take it (shared/text.py): a NUL or
another control character no consumer's column could hold is refused by the contract, so by the
producer's outbox, and never reaches a consumer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel, ValidationError

from shared.contracts import EVENT_MODELS
from tests.contracts.strategies import payloads

Path = tuple[str | int, ...]


def string_leaves(value: Any, path: Path = ()) -> Iterator[Path]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from string_leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_leaves(item, (*path, index))
    elif isinstance(value, str):
        yield path


def replaced(value: Any, path: Path, make: Any) -> Any:
    if not path:
        return make(value)
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return value | {head: replaced(value[head], rest, make)}
    return [replaced(item, rest, make) if index == head else item for index, item in enumerate(value)]


def with_control(text: str, char: str) -> str:
    return text[:-1] + char if text else char  # the same length: only the character is wrong


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_no_string_of_an_event_may_hold_a_nul_or_a_control_character(event_type: str) -> None:
    model: type[BaseModel] = EVENT_MODELS[event_type]

    @settings(max_examples=3, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=payloads(model))
    def check(data: dict[str, Any]) -> None:
        for path in string_leaves(data):
            for char in ("\x00", "\x1b"):
                with pytest.raises(ValidationError):
                    model.model_validate(replaced(data, path, lambda text, c=char: with_control(text, c)))

    check()
