"""What workforce's request and reply bodies share: field types and enumerations."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints

from shared.pii import validate_national_id
from shared.text import line, text

# Text as every service takes it (shared/text.py): `Text*` one line, 1–n characters; `Text1000` and
# `Note*` free text (`Note*` may be empty).
Text64 = line(64)
Text100 = line(100)
Text200 = line(200)
Text300 = line(300)
Text1000 = text(1000, min_length=1)
Note300 = text(300)
Note1000 = text(1000)
Uuid = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
# Bounded before validation so an absurd body never reaches the checks; the checks say what is wrong.
RawIdNumber = Annotated[str, StringConstraints(max_length=64)]


class AgeClass(StrEnum):
    infant = "infant"
    toddler = "toddler"
    preschool = "preschool"


class PiiView(StrEnum):
    masked = "masked"
    unmasked = "unmasked"


def valid_id_number(value: str) -> str:
    """The number in canonical form: a field validator for the bodies that name a person."""
    return validate_national_id(value)
