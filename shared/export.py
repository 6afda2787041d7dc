"""Lists as spreadsheets: `Accept: text/csv` or XLSX on the lists bureaus export.

The whole filtered set, not one page: the list's own page function (the same filters and the same
visibility as its JSON, personal data masked the same way) is called a keyset page at a time, each in
a short session of its own, and each page's rows leave before the next is read, so 100,000 rows are
never held at once. CSV is UTF-8 with a BOM (so Excel opens Chinese as Chinese), quoted per RFC
4180, streamed page by page. XLSX is written by openpyxl's write-only mode, which keeps rows on disk
as they come, then streamed from that file. A text cell that a spreadsheet would run as a formula
(`= + - @`, a tab or a carriage return first) is prefixed with `'`.

A route opts in with `ExportDep` and `EXPORT_RESPONSES`; without an export it answers JSON as ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import tempfile
import types
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import IO, Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import session_scope
from shared.errors import CradleError
from shared.i18n import tr
from shared.pagination import Page, PageParams, decode_cursor

JSON = "application/json"
CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
OFFERED = (JSON, CSV, XLSX)  # in this order of preference when the caller likes them equally
EXPORT_PAGE_ROWS = 500
FILE_CHUNK_BYTES = 64 * 1024
BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | float | bool | None
# What a list's page function returns: its Page, a {items, next_cursor} mapping, or that as JSON bytes
PageLike = Page[Any] | Mapping[str, Any] | bytes
FetchPage = Callable[[PageParams], Awaitable[PageLike]]
FetchPageIn = Callable[[AsyncSession, PageParams], Awaitable[PageLike]]


class NotAcceptable(CradleError):
    status, title, type = 406, "Not acceptable", "/problems/not-acceptable"


EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The list; with `Accept: text/csv` or the XLSX type, the whole filtered set as a file",
        "content": {
            CSV: {"schema": {"type": "string"}},
            XLSX: {"schema": {"type": "string", "format": "binary"}},
        },
    },
    406: {"description": "`Accept` names nothing this list answers (JSON, CSV, XLSX)"},
}


def _ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        ranges.append((media.lower(), quality))
    return ranges


def _quality(offer: str, ranges: list[tuple[str, float]]) -> float:
    """The quality of the most specific range matching `offer` (RFC 9110 §12.5.1)."""
    kind = offer.split("/")[0]
    best: tuple[int, float] = (-1, 0.0)
    for media, quality in ranges:
        specificity = 2 if media == offer else 1 if media == f"{kind}/*" else 0 if media == "*/*" else -1
        if specificity > best[0]:
            best = (specificity, quality)
    return best[1]


def negotiate_export(accept: str | None) -> str:
    """JSON, CSV or XLSX, whichever `Accept` likes best (JSON without one); none acceptable: 406."""
    if not accept or not accept.strip():
        return JSON
    ranges = _ranges(accept)
    scored = [(_quality(offer, ranges), -index, offer) for index, offer in enumerate(OFFERED)]
    quality, _, offer = max(scored)
    if quality <= 0:
        raise NotAcceptable(
            tr(
                "This list answers {types}; Accept asked for {accept}.",
                types=", ".join(OFFERED),
                accept=accept[:200],
            )
        )
    return offer


def columns_of(model: type[BaseModel]) -> list[str]:
    """The model's fields as column names; a nested model's fields as `outer.inner`."""
    columns = []
    for name, field in model.model_fields.items():
        inner = _model_in(field.annotation)
        if inner is not None:
            columns.extend(f"{name}.{column}" for column in columns_of(inner))
        else:
            columns.append(name)
    return columns


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [_model_in(arg) for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(models) == 1:
            return models[0]
    return None


def neutralised(text: str) -> str:
    """Text a spreadsheet shows as text, never runs as a formula (OWASP, CSV injection)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def cell(value: Any) -> Cell:
    """A JSON value as one cell: numbers and flags as themselves, lists of plain values joined with
    `; `, anything else nested as JSON text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return neutralised(value)
    if isinstance(value, list) and all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
    ):
        return neutralised("; ".join(str(v) for v in value))
    return neutralised(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def row_of(item: Mapping[str, Any], columns: Sequence[str]) -> list[Cell]:
    out = []
    for column in columns:
        value: Any = item
        for key in column.split("."):
            value = value.get(key) if isinstance(value, Mapping) else None
        out.append(cell(value))
    return out


def csv_text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _items_and_cursor(page: PageLike) -> tuple[list[Mapping[str, Any]], str | None]:
    if isinstance(page, bytes):
        page = orjson.loads(page)
    if isinstance(page, BaseModel):
        page = page.model_dump(mode="json")
    return list(page["items"]), page.get("next_cursor")


async def _pages(first: PageLike, fetch: FetchPage) -> AsyncIterator[list[Mapping[str, Any]]]:
    items, cursor = _items_and_cursor(first)
    while True:
        yield items
        if cursor is None:
            return
        items, cursor = _items_and_cursor(
            await fetch(PageParams(limit=EXPORT_PAGE_ROWS, after=decode_cursor(cursor)))
        )


async def _csv_body(
    pages: AsyncIterator[list[Mapping[str, Any]]], columns: list[str]
) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180: CRLF, quotes doubled inside quotes
    buffer.write(BOM)
    writer.writerow(columns)
    async for items in pages:
        writer.writerows([csv_text(value) for value in row_of(item, columns)] for item in items)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()


def _append_rows(sheet: Any, rows: Iterable[list[Cell]]) -> None:
    for row in rows:
        sheet.append(row)


async def _xlsx_body(
    pages: AsyncIterator[list[Mapping[str, Any]]], columns: list[str], sheet_name: str
) -> AsyncIterator[bytes]:
    # Write-only: openpyxl keeps the rows in a file of its own as they are appended, and the zip is
    # written to a temporary file; both are on disk, not in memory. The work is in a thread, so the
    # service keeps answering others meanwhile. Imported here: most starts never write a workbook.
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=sheet_name[:31])
    saved = False
    try:
        sheet.append(columns)
        async for items in pages:
            rows = [row_of(item, columns) for item in items]
            await asyncio.to_thread(_append_rows, sheet, rows)
        with tempfile.TemporaryFile() as file:
            await asyncio.to_thread(workbook.save, file)
            saved = True
            file.seek(0)
            while chunk := await asyncio.to_thread(_read, file):
                yield chunk
    finally:
        if not saved:
            _discard(sheet)


def _discard(sheet: Any) -> None:
    """A workbook abandoned midway (the caller left, a page failed): openpyxl removes its file of
    rows when the workbook is saved or the process exits; here, now."""
    writer = getattr(sheet, "_writer", None)
    if writer is None:
        return
    with contextlib.suppress(Exception):
        sheet.close()
    with contextlib.suppress(OSError, ValueError):
        writer.cleanup()


def _read(file: IO[bytes]) -> bytes:
    return file.read(FILE_CHUNK_BYTES)


@dataclass
class Export:
    """What the caller's `Accept` asked of a list, and how to answer it as a file."""

    media_type: str
    request: Request

    @property
    def wanted(self) -> bool:
        return self.media_type != JSON

    async def respond(self, fetch: FetchPageIn, *, name: str, model: type[BaseModel]) -> StreamingResponse:
        """The whole list, each page read by `fetch` in a session of its own (the request's has
        ended before the file is sent)."""
        maker = self.request.app.state.sessionmaker

        async def in_own_session(page: PageParams) -> PageLike:
            async with session_scope(maker) as session:
                return await fetch(session, page)

        return await self.respond_pages(in_own_session, name=name, model=model)

    async def respond_pages(
        self, fetch: FetchPage, *, name: str, model: type[BaseModel]
    ) -> StreamingResponse:
        # The first page before the answer starts: a refusal is still a problem, not a cut file.
        first = await fetch(PageParams(limit=EXPORT_PAGE_ROWS, after=None))
        columns = columns_of(model)
        pages = _pages(first, fetch)
        stamp = date.today().isoformat()
        if self.media_type == CSV:
            body, filename = _csv_body(pages, columns), f"{name}-{stamp}.csv"
            media_type = "text/csv; charset=utf-8"
        else:
            body, filename = _xlsx_body(pages, columns, name), f"{name}-{stamp}.xlsx"
            media_type = XLSX
        headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Vary": "Accept"}
        return StreamingResponse(body, media_type=media_type, headers=headers)


async def export_of(request: Request) -> Export:
    return Export(media_type=negotiate_export(request.headers.get("accept")), request=request)


ExportDep = Annotated[Export, Depends(export_of)]
