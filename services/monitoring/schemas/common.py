"""The field types monitoring's request bodies share."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from shared.contracts.types import UuidAnyCase
from shared.text import FreeText

# Text as every service takes it (shared/text.py): no NUL, other control characters or lone surrogates.
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), FreeText]
Note = Annotated[str, StringConstraints(strip_whitespace=True), FreeText]
Uuid = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ),
]
DistrictCode = Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
Seed = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,64}$")]
# The contract's own types: what the API takes, the incident.confirmed event can carry.
PractitionerIds = Annotated[list[UuidAnyCase], Field(max_length=50)]
# Printable ASCII without spaces: the sender's event id, used as a key and in logs.
EventId = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,100}$")]
