"""Payloads a producer may emit, generated from its contract's JSON schema (shared/contracts), then
passed through the model as the outbox does, so every example is one the outbox would write."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

# People type these (the services' text types refuse control characters and lone surrogates).
TYPED = st.characters(blacklist_categories=("Cc", "Cs"))
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.isoformat())
DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)).map(date.isoformat)
# People type numbers too: a name, a note or a reason may quote a mobile or an ID number, which a
# producer may say and every consumer must take (delivery masks them in what it sends).
QUOTED_NUMBERS = st.builds(
    "{}{}".format,
    st.text(TYPED, max_size=4),
    st.sampled_from(["13812345678", "310104199001011234", "11010519491231002X", "000000000000000000"]),
)
UNBOUNDED_INT = 10**6  # where a schema gives no bound
# The contracts' common patterns, drawn directly: `from_regex` draws a choice per character, and the
# 129 id fields' 32 hex digits each were most of this suite's time. Each is the pattern's whole
# language (tests/contracts/test_strategies.py checks they match).
PATTERNS: dict[str, st.SearchStrategy[str]] = {
    "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$": st.integers(0, 2**128 - 1).map(
        lambda n: str(UUID(int=n))
    ),
    "^[0-9]{6}$": st.integers(0, 10**6 - 1).map("{:06d}".format),
    "^[0-9]{9}$": st.integers(0, 10**9 - 1).map("{:09d}".format),
    "^([01][0-9]|2[0-3]):[0-5][0-9]$": st.builds(
        "{:02d}:{:02d}".format, st.integers(0, 23), st.integers(0, 59)
    ),
}


def _text(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    if "pattern" in schema:
        if schema["pattern"] in PATTERNS:
            return PATTERNS[schema["pattern"]]
        return st.from_regex(schema["pattern"], fullmatch=True)
    if schema.get("format") == "date-time":
        return MOMENTS
    if schema.get("format") == "date":
        return DAYS
    low, high = schema.get("minLength", 0), schema.get("maxLength", 300)
    # Short texts most of the time, and the longest allowed now and then: the consumers' columns.
    return st.one_of(
        st.text(TYPED, min_size=low, max_size=min(high, 40)),
        st.text(TYPED, min_size=high, max_size=high),
        QUOTED_NUMBERS.filter(lambda text: low <= len(text) <= high),
    )


def _integer(schema: dict[str, Any]) -> st.SearchStrategy[int]:
    low = schema.get("minimum", schema.get("exclusiveMinimum", -UNBOUNDED_INT - 1) + 1)
    high = schema.get("maximum", schema.get("exclusiveMaximum", UNBOUNDED_INT + 1) - 1)
    return st.one_of(st.integers(low, high), st.sampled_from(sorted({low, high})))


def _number(schema: dict[str, Any]) -> st.SearchStrategy[float]:
    low = schema.get("minimum", schema.get("exclusiveMinimum", -UNBOUNDED_INT))
    high = schema.get("maximum", schema.get("exclusiveMaximum", UNBOUNDED_INT))
    return st.floats(
        low,
        high,
        exclude_min="exclusiveMinimum" in schema,
        exclude_max="exclusiveMaximum" in schema,
        allow_nan=False,
        allow_infinity=False,
    )


def from_schema(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of(*(from_schema(option, defs) for option in schema["anyOf"]))
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return _integer(schema)
    if kind == "number":
        return _number(schema)
    if kind == "string":
        return _text(schema)
    if kind == "array":
        return st.lists(
            from_schema(schema.get("items", {}), defs),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 4), 4),
        )
    if kind == "object":
        properties: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fields = {name: from_schema(sub, defs) for name, sub in properties.items() if name in required}
        optional = {name: from_schema(sub, defs) for name, sub in properties.items() if name not in required}
        return st.fixed_dictionaries(fields, optional=optional)
    raise NotImplementedError(f"no strategy for schema {schema!r}")


def _as_emitted(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return model.model_validate(data).model_dump(mode="json")
    except ValidationError:  # e.g. a model validator the schema cannot say (opens before closes)
        return None


def payloads(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    schema = model.model_json_schema()
    raw = from_schema(schema, schema.get("$defs", {}))
    return raw.map(lambda data: _as_emitted(model, data)).filter(lambda data: data is not None)
