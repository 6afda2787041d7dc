"""docs/EVENTS.md is the catalogue people read: it lists exactly the event types that have a
contract, and each type's fields as its model has them (nested `{…}` fields included)."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from shared.contracts import EVENT_MODELS
from shared.contracts.registry import FacilityFacts

EVENTS_MD = Path(__file__).resolve().parents[2] / "docs" / "EVENTS.md"
TYPE = re.compile(r"`(cradle\.[a-z_]+\.[a-z_]+\.[a-z_]+|\.[a-z_]+)`")
# The table of facts every registry event about a facility carries, under its heading.
REGISTRY_FACTS = "carries the facility's current facts"


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{(" and 1 or 0
        depth -= char in "]})" and 1 or 0
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [part.strip() for part in [*parts, current] if part.strip()]


Fields = dict[str, "Fields | None"]  # a field, and the fields documented inside it ({…})


def parse_fields(text: str) -> Fields:
    """`a, b?, c (x\\|y), d: [{e, f}], g: {h}` → {a, b, c, d: {e, f}, g: {h}}."""
    found: Fields = {}
    for segment in re.findall(r"`([^`]*)`", text):
        for item in split_top_level(segment):
            match = re.match(r"([a-z_]+)\??", item)
            if not match:
                continue
            nested = re.search(r"\{(.*)\}", item)
            found[match.group(1)] = parse_fields(f"`{nested.group(1)}`") if nested else None
    return found


def catalogue() -> dict[str, Fields]:
    """Every event type documented in a table, with the fields its row (and, for the registry,
    the facts table) names."""
    documented: dict[str, Fields] = {}
    facts: Fields = {}
    in_facts = False
    for line in EVENTS_MD.read_text().splitlines():
        if REGISTRY_FACTS in line:
            in_facts = True
        if not line.startswith("|"):
            if facts:  # the facts table has ended
                in_facts = False
            continue
        row = cells(line)
        if not row or set(row[0]) <= {"-", " "} or row[0] in ("type", "field"):
            continue
        if in_facts:
            for name in re.findall(r"`([a-z_]+)`", row[0]):
                nested = re.fullmatch(r"`\{(.*)\}`", row[1])
                facts[name] = parse_fields(f"`{nested.group(1)}`") if nested else None
            continue
        types: list[str] = []
        for name in TYPE.findall(row[0]):
            types.append(types[-1].rsplit(".", 1)[0] + name if name.startswith(".") else name)
        if not types:
            continue
        fields = parse_fields(row[-1])
        for event_type in types:
            assert event_type not in documented, f"{event_type} is documented twice"
            about_facility = issubclass(EVENT_MODELS.get(event_type, FacilityFacts), FacilityFacts)
            documented[event_type] = (
                (facts | fields) if event_type.startswith("cradle.registry.") and about_facility else fields
            )
    return documented


def _inner_model(annotation: object) -> type[BaseModel] | None:
    """The model a field holds: `X`, `list[X]`, `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        inner = _inner_model(argument)
        if inner is not None:
            return inner
    return None


def mismatches(model: type[BaseModel], fields: Fields, path: str = "") -> list[str]:
    problems = [
        f"{path}{name}: documented, not in {model.__name__}"
        for name in fields
        if name not in model.model_fields
    ]
    problems += [
        f"{path}{name}: in {model.__name__}, not documented"
        for name in model.model_fields
        if name not in fields
    ]
    for name, nested in fields.items():
        inner = _inner_model(model.model_fields[name].annotation) if name in model.model_fields else None
        if nested is not None and inner is not None:
            problems += mismatches(inner, nested, f"{path}{name}.")
    return problems


def test_the_catalogue_lists_exactly_the_types_with_a_contract() -> None:
    documented = catalogue()
    assert sorted(set(EVENT_MODELS) - set(documented)) == [], "contracts missing from docs/EVENTS.md"
    assert sorted(set(documented) - set(EVENT_MODELS)) == [], "documented types without a contract"


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_the_catalogue_names_each_type_s_fields_as_its_model_has_them(event_type: str) -> None:
    fields = catalogue().get(event_type)
    assert fields is not None, f"{event_type} is not in docs/EVENTS.md"
    assert mismatches(EVENT_MODELS[event_type], fields) == []
