"""Times and dates every service accepts alike: a `Timestamp` carries its offset (a naive time is
refused, since nobody can tell which clock it was read from) and lies, in UTC, within `EARLIEST` ..
`LATEST`; a `Day` lies within the same years. Year 1 or 9999 with an offset overflows the
conversion to UTC and PostgreSQL's range: such values are a 422 naming the field, never a 500."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, Field

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
RANGE = f"between {EARLIEST.year} and {LATEST.year - 1}"


def in_range(value: datetime) -> datetime:
    offset = value.utcoffset() or timedelta(0)
    # Compared on the naive clock reading, shifted by the offset bounds: no conversion that could
    # overflow at year 1 or 9999.
    naive = value.replace(tzinfo=None)
    if naive < EARLIEST.replace(tzinfo=None) + offset or naive >= LATEST.replace(tzinfo=None) + offset:
        raise ValueError(f"must be {RANGE} (in UTC)")
    return value


def day_in_range(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError(f"must be {RANGE}")
    return value


def _document(schema: dict[str, Any]) -> None:
    schema.setdefault("description", f"RFC 3339 with an offset, {RANGE} in UTC")


Timestamp = Annotated[AwareDatetime, AfterValidator(in_range), Field(json_schema_extra=_document)]
Day = Annotated[date, AfterValidator(day_in_range)]
