"""Field types shared by the contracts: a constraint is declared here once, so whatever a producer
may emit every consumer accepts (and a consumer's table can hold)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints

from shared.text import FreeText, OneLine

# Every id in Cradle is str(uuid.uuid4()): lowercase, 36 characters (the consumers' columns).
Uuid = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


# For request bodies naming an id that will travel in an event: any case in, lowercase out.
UuidAnyCase = Annotated[Uuid, BeforeValidator(_lower)]
DistrictCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
TownCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{9}$")]
# Years 2000–2100, as every year parameter: a month's arithmetic (its end, the next month) stays in
# four-digit years, and `[0-9]`, not `\d`, which would also match other scripts' digits.
MONTH_PATTERN = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])$"
Month = Annotated[str, StringConstraints(pattern=MONTH_PATTERN)]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
# A decision's reference (文号): the workforce keeps it on the ban, in a 100-character column.
DecisionRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), OneLine]
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64), FreeText]
# Consumers keep counts and versions in INTEGER columns.
INT32_MAX = 2_147_483_647
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]


# Text as the services' APIs take it (shared/text.py): never a NUL, another control character or a
# lone surrogate, which no consumer's column could hold.
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), FreeText]
Code = Annotated[str, StringConstraints(min_length=1, max_length=32), FreeText]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=4000), FreeText]


def text(max_length: int, *, min_length: int = 0) -> Any:
    """Free text of at most `max_length` characters, as the APIs take it."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length), FreeText]
