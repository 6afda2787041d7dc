"""Text that every service accepts alike. A request's strings are trimmed and bounded, and never
hold what PostgreSQL cannot store or a reader cannot see: the NUL character, other control
characters (free text keeps newline, carriage return and tab), or lone UTF-16 surrogates (which
no encoder can write). Refused as a 422 naming the field, on SQLite exactly as on PostgreSQL.

    name: Name                       # one line, 1–200 characters
    note: text(2000) = ""            # free text, may be empty
    vendor: line(100)                # one line, 1–100 characters"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints

from shared.i18n import tr

# C0 controls, DEL, C1 controls, surrogates. Free text allows \t \n \r.
_CONTROL_IN_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
MAX_PAYLOAD_DEPTH = 16


def _describe(char: str) -> str:
    if char == "\x00":
        return tr("the NUL character")
    if "\ud800" <= char <= "\udfff":
        return tr("a lone surrogate ({code})", code=f"U+{ord(char):04X}")
    return tr("a control character ({code})", code=f"U+{ord(char):04X}")


def refuse_control_in_line(value: str) -> str:
    found = _CONTROL_IN_LINE.search(value)
    if found:
        raise ValueError(tr("must be one line of text without {what}", what=_describe(found.group())))
    return value


def refuse_control_in_text(value: str) -> str:
    found = _CONTROL_IN_TEXT.search(value)
    if found:
        raise ValueError(tr("must not contain {what}", what=_describe(found.group())))
    return value


OneLine = AfterValidator(refuse_control_in_line)
FreeText = AfterValidator(refuse_control_in_text)


def line(max_length: int, *, min_length: int = 1) -> Any:
    """One line: names, titles, labels, codes a person types."""
    return Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length), OneLine
    ]


def text(max_length: int, *, min_length: int = 0) -> Any:
    """Free text (notes, reasons, descriptions): line breaks and tabs allowed."""
    return Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length), FreeText
    ]


ShortText = line(100)
Name = line(200)
Text = text(2000)


def _clean_payload(value: Any, depth: int = 0) -> Any:
    if depth > MAX_PAYLOAD_DEPTH:
        raise ValueError(tr("nests deeper than {levels} levels", levels=MAX_PAYLOAD_DEPTH))
    if isinstance(value, str):
        return refuse_control_in_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("holds a number that is not finite (NaN or infinity)")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        raise ValueError("holds an integer outside the 64-bit range")
    if isinstance(value, dict):
        for key, item in value.items():
            refuse_control_in_text(key)
            if type(item) is str and depth < MAX_PAYLOAD_DEPTH:  # the common leaf, without a call
                refuse_control_in_text(item)
            else:
                _clean_payload(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _clean_payload(item, depth + 1)
    return value


def clean_payload(value: dict[str, Any]) -> dict[str, Any]:
    """A free-form JSON object (a device's event payload) that can be stored and re-encoded: no
    control characters or lone surrogates in its strings, finite 64-bit numbers, bounded depth."""
    return _clean_payload(value)


Payload = Annotated[dict[str, Any], AfterValidator(clean_payload)]
