"""Numbers and flags in request bodies, as JSON sends them. Pydantic's lax mode would read `0` as
false, `false` as 0 and `"12.5"` as a number: a body the document calls invalid, accepted with a
meaning the caller may not have meant. These take only their own JSON type (an integer is also a
valid `Number`), and a number is finite. Bodies only: a query parameter arrives as text."""

from __future__ import annotations

from typing import Annotated

from pydantic import AllowInfNan, Strict

Flag = Annotated[bool, Strict()]
Integer = Annotated[int, Strict()]
Number = Annotated[float, Strict(), AllowInfNan(False)]
