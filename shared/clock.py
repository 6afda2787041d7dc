"""Times and dates every service accepts alike: a `Timestamp` carries its offset (a naive time is
refused, since nobody can tell which clock it was read from) and lies, in UTC, within `EARLIEST` ..
`LATEST`; a `Day` lies within the same years. Year 1 or 9999 with an offset overflows the
conversion to UTC and PostgreSQL's range: such values are a 422 naming the field, never a 500.

Also the one clock and calendar every service reads: `utcnow`, `as_utc` (SQLite hands back naive
times), Shanghai's zone and today, and `new_id` for every row's id."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field

# The city's calendar: business days, opening hours and the plan's years are Shanghai's.
SHANGHAI = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def shanghai_today(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(SHANGHAI).date()


def new_id() -> str:
    """Every id in Cradle: str(uuid.uuid4()), lowercase, 36 characters."""
    return str(uuid.uuid4())


EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
RANGE = f"between {EARLIEST.year} and {LATEST.year - 1}"


# Pydantic would also read a number (or a string of digits) as seconds since 1970: `on=0` would be
# 1 January 1970. The documents say ISO 8601 text, so that is all a request may send.
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def iso_date(value: object) -> object:
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    if isinstance(value, int | float):
        raise ValueError("must be a date as YYYY-MM-DD, not a number")
    return value


def iso_time(value: object) -> object:
    if isinstance(value, str) and not _ISO_TIME.match(value):
        raise ValueError("must be a date and time as RFC 3339, e.g. 2026-11-28T09:30:00+08:00")
    if isinstance(value, int | float):
        raise ValueError("must be a date and time as RFC 3339, not a number")
    return value


_EARLIEST_NAIVE = EARLIEST.replace(tzinfo=None)
_LATEST_NAIVE = LATEST.replace(tzinfo=None)


def in_range(value: datetime) -> datetime:
    if EARLIEST.year < value.year < LATEST.year - 1:  # a year's margin holds any offset (hot: ingest)
        return value
    offset = value.utcoffset() or timedelta(0)
    # Compared on the naive clock reading, shifted by the offset bounds: no conversion that could
    # overflow at year 1 or 9999.
    naive = value.replace(tzinfo=None)
    if naive < _EARLIEST_NAIVE + offset or naive >= _LATEST_NAIVE + offset:
        raise ValueError(f"must be {RANGE} (in UTC)")
    return value


def day_in_range(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError(f"must be {RANGE}")
    return value


def _document(schema: dict[str, Any]) -> None:
    schema.setdefault("description", f"RFC 3339 with an offset, {RANGE} in UTC")


Timestamp = Annotated[
    AwareDatetime, BeforeValidator(iso_time), AfterValidator(in_range), Field(json_schema_extra=_document)
]
Day = Annotated[date, BeforeValidator(iso_date), AfterValidator(day_in_range)]
