"""Spreadsheets in: an uploaded XLSX or CSV read into one dict per row, keyed by field, whatever the
language of its headers (each field names the headers it accepts, Chinese and English), each cell
turned into the JSON value the API's own request model expects, so a row is validated exactly as
the same record sent as JSON would be. What a service does with the rows is its own (a verdict per
row: create, update, skip or error, the field named)."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import File, Query, UploadFile
from pydantic import BaseModel, Field

from shared.errors import FieldError, InvalidInput, invalid
from shared.i18n import tr

MAX_IMPORT_ROWS = 5_000
XLSX_MAGIC = b"PK\x03\x04"


class CellKind(StrEnum):
    text = "text"
    day = "day"
    integer = "integer"
    number = "number"
    flag = "flag"
    items = "items"  # several values in one cell, separated by ; 、 , or ，


@dataclass(frozen=True)
class Column:
    """A field of the import and the headers that name it (compared without case, spaces, `*`)."""

    field: str
    headers: tuple[str, ...]
    kind: CellKind = CellKind.text
    required: bool = False


Outcome = Literal["create", "update", "skip", "error"]


class RowVerdict(BaseModel):
    row: int = Field(description="The row's number in the spreadsheet (the header is row 1)")
    outcome: Outcome
    key: str | None = Field(default=None, description="The row's natural key as shown (ID numbers masked)")
    id: str | None = Field(default=None, description="The record the row created, updated or found")
    errors: list[FieldError] = []


class ImportReport(BaseModel):
    kind: str
    dry_run: bool
    rows: int
    created: int
    updated: int
    skipped: int
    errors: int
    items: list[RowVerdict]

    @classmethod
    def of(cls, kind: str, dry_run: bool, items: list[RowVerdict]) -> ImportReport:
        def count(outcome: str) -> int:
            return sum(1 for item in items if item.outcome == outcome)

        return cls(
            kind=kind,
            dry_run=dry_run,
            rows=len(items),
            created=count("create"),
            updated=count("update"),
            skipped=count("skip"),
            errors=count("error"),
            items=items,
        )


Upload = Annotated[
    UploadFile, File(description="The spreadsheet: XLSX, or CSV in UTF-8 (a BOM is fine) or GB18030")
]
DryRun = Annotated[bool, Query(description="Only say what each row would do; change nothing")]


def upload_example(filename: str) -> dict[str, Any]:
    """The route's `openapi_extra`: an example of its multipart body (the file's bytes, named)."""
    return {"requestBody": {"content": {"multipart/form-data": {"example": {"file": filename}}}}}


def _normal(header: str) -> str:
    return re.sub(r"[\s*_\-（）()]+", "", header).lower()


@dataclass
class Table:
    """The rows of the sheet that hold anything, each with its spreadsheet row number."""

    rows: list[tuple[int, dict[str, Any]]]


async def read_upload(upload: UploadFile, columns: Sequence[Column]) -> Table:
    content = await upload.read()
    if not content:
        raise invalid("file", "is empty")
    if content.startswith(XLSX_MAGIC):
        raw = _xlsx_rows(content)
    else:
        raw = _csv_rows(content)
    header, *body = raw if raw else [[]]
    by_header = {_normal(h): c for c in columns for h in (c.field, *c.headers)}
    fields: list[Column | None] = []
    errors: list[FieldError] = []
    for index, title in enumerate(header):
        text = "" if title is None else str(title).strip()
        column = by_header.get(_normal(text)) if text else None
        if text and column is None:
            errors.append(
                FieldError(field=f"file.header.{index + 1}", message=tr("unknown column {title}", title=text))
            )
        fields.append(column)
    named = {c.field for c in fields if c is not None}
    for column in columns:
        if column.required and column.field not in named:
            errors.append(FieldError(field=column.field, message="is a required column"))
    if errors:
        raise InvalidInput(
            tr("The file's columns: {fields}", fields=", ".join(e.field for e in errors)), errors=errors
        )
    rows = []
    for number, cells in enumerate(body, start=2):
        values = {
            column.field: _cell(value, column.kind)
            for column, value in zip(fields, cells, strict=False)
            if column is not None and value not in (None, "")
        }
        if values:
            rows.append((number, values))
    if len(rows) > MAX_IMPORT_ROWS:
        raise invalid("file", tr("holds more than {limit} rows; split it", limit=MAX_IMPORT_ROWS))
    return Table(rows=rows)


def _xlsx_rows(content: bytes) -> list[list[Any]]:
    from openpyxl import load_workbook  # here: most starts never read a workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise invalid("file", "is not an XLSX workbook this API can read") from exc
    try:
        sheet = workbook.worksheets[0]
        rows = []
        for row in sheet.iter_rows(values_only=True):
            rows.append(list(row))
            if len(rows) > MAX_IMPORT_ROWS + 1:
                break
        return rows
    finally:
        workbook.close()


def _csv_rows(content: bytes) -> list[list[Any]]:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel saves Chinese CSV as GB18030 unless told UTF-8
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise invalid("file", "is neither XLSX nor CSV in UTF-8 or GB18030")
    if "\x00" in text:
        raise invalid("file", "is neither XLSX nor CSV in UTF-8 or GB18030")
    try:
        return [row for row in csv.reader(io.StringIO(text, newline=""))][: MAX_IMPORT_ROWS + 2]
    except csv.Error as exc:
        raise invalid("file", "is not a CSV file this API can read") from exc


_TRUE = {"true", "yes", "y", "1", "是", "有", "√", "对"}
_FALSE = {"false", "no", "n", "0", "否", "无", "×", "不"}


def _cell(value: Any, kind: CellKind) -> Any:
    """The JSON value the request model expects; anything it cannot be is left for the model to name."""
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("'") and kind == CellKind.text:
            value = value[1:]  # an export's neutralised formula, read back
    if kind == CellKind.day:
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, str):
            return value.replace("/", "-").replace(".", "-")
        return value
    if kind == CellKind.integer:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
            return int(value)
        return value
    if kind == CellKind.number:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        return value
    if kind == CellKind.flag:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return True if text in _TRUE else False if text in _FALSE else value
    if kind == CellKind.items:
        return [part.strip() for part in re.split(r"[;；、,，]", str(value)) if part.strip()]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a number typed into a text column (a licence or phone number)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
