"""The export helper on its own: what `Accept` chooses, what a cell becomes, and an XLSX abandoned
midway leaves no file behind."""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from shared.export import CSV, JSON, XLSX, NotAcceptable, _xlsx_body, cell, negotiate_export


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("text/csv", CSV),
        ("text/*", CSV),
        (XLSX, XLSX),
        ("application/*", JSON),
        ("text/csv;q=0.5, application/json", JSON),
        ("application/json;q=0.1, text/csv", CSV),
        (f"{XLSX}, */*;q=0.1", XLSX),
        ("TEXT/CSV", CSV),
        ("application/json;q=nonsense, text/csv;q=0.2", CSV),
    ],
)
def test_accept_chooses_by_quality_and_specificity(accept: str | None, chosen: str) -> None:
    assert negotiate_export(accept) == chosen


@pytest.mark.parametrize("accept", ["application/xml", "text/html", "image/*", "text/csv;q=0", "*/*;q=0"])
def test_nothing_acceptable_is_a_406(accept: str) -> None:
    with pytest.raises(NotAcceptable) as refused:
        negotiate_export(accept)
    assert refused.value.status == 406 and refused.value.type == "/problems/not-acceptable"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("=1+1", "'=1+1"),
        ("+86 139", "'+86 139"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("徐汇区", "徐汇区"),
        (-2, -2),
        (True, True),
        (None, None),
        (["full_day", "hourly"], "full_day; hourly"),
        (["=cmd"], "'=cmd"),
        ({"note": "哭声"}, '{"note":"哭声"}'),
    ],
)
def test_a_cell_never_runs_as_a_formula(value: Any, shown: Any) -> None:
    assert cell(value) == shown


async def test_an_abandoned_workbook_leaves_no_file() -> None:
    async def pages() -> AsyncIterator[list[Mapping[str, Any]]]:
        yield [{"id": "a", "n": 1}]
        raise RuntimeError("the database went away")

    pattern = os.path.join(tempfile.gettempdir(), "openpyxl.*")
    before = set(glob.glob(pattern))
    with pytest.raises(RuntimeError):
        async for _ in _xlsx_body(pages(), ["id", "n"], "alerts"):
            pass
    assert set(glob.glob(pattern)) - before == set()
