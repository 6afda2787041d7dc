"""`cradle import FILE --to URL`: a spreadsheet (XLSX or CSV) uploaded to an import path of a running
Cradle — `…/v1/imports/roster` (an operator's staff roster) or `…/v1/imports/facilities` (EDU's
licensed facilities) — with a progress bar while it goes, then the verdicts: how many rows would
be (or were) created, updated, skipped, and every row in error with its fields. `--dry-run` first.

Authenticates with a token (`--token`, `CRADLE_TOKEN`) or a client's id and secret (`--client-id`,
`--client-secret`, `CRADLE_CLIENT_ID`, `CRADLE_CLIENT_SECRET`), which it exchanges at the same
gateway's token endpoint. Exit status: 0 when no row is in error, 1 when some are, 2 when the file
was refused whole (its columns, its kind, the caller's rights)."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

CHUNK_BYTES = 64 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
console = Console(soft_wrap=True)


def _token(client: httpx.Client, origin: str, client_id: str, secret: str) -> str:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    response = client.post(f"{origin}/v1/auth/token", data=form)
    if response.status_code != 200:
        raise typer.BadParameter(f"the gateway refused the client's credentials ({response.status_code})")
    return str(response.json()["access_token"])


def _multipart(path: Path, progress: Progress) -> tuple[bytes, Iterator[bytes], int]:
    """The file as one multipart/form-data part, read and sent a chunk at a time."""
    boundary = "cradle-" + path.stat().st_mtime_ns.to_bytes(8, "big").hex()
    kind = XLSX if path.suffix.lower() == ".xlsx" else mimetypes.guess_type(path.name)[0] or "text/csv"
    name = path.name.replace('"', "")
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {kind}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = path.stat().st_size
    task = progress.add_task(f"uploading {escape(path.name)}", total=size)

    def parts() -> Iterator[bytes]:
        yield head
        with path.open("rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                progress.advance(task, len(chunk))
                yield chunk
        yield tail

    return f"multipart/form-data; boundary={boundary}".encode(), parts(), len(head) + size + len(tail)


def _summary(report: dict[str, Any]) -> None:
    mode = "would be (dry run)" if report.get("dry_run") else "were"
    console.print(
        f"{report['rows']} rows of {report['kind']}: {report['created']} {mode} created, "
        f"{report['updated']} updated, {report['skipped']} skipped (already on record), "
        f"[{'red' if report['errors'] else 'green'}]{report['errors']} in error[/]"
    )
    failed = [item for item in report["items"] if item["outcome"] == "error"]
    if failed:
        table = Table("row", "key", "field", "what is wrong")
        for item in failed:
            for error in item["errors"]:
                table.add_row(
                    str(item["row"]), escape(item.get("key") or ""), error["field"], escape(error["message"])
                )
        console.print(table)


def import_file(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="XLSX or CSV")],
    to: Annotated[
        str, typer.Option("--to", help="The import path: https://…/v1/imports/roster or …/facilities")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what each row would do")] = False,
    token: Annotated[str | None, typer.Option(envvar="CRADLE_TOKEN", help="A bearer token")] = None,
    client_id: Annotated[str | None, typer.Option(envvar="CRADLE_CLIENT_ID")] = None,
    client_secret: Annotated[str | None, typer.Option(envvar="CRADLE_CLIENT_SECRET")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the verdicts")] = 300.0,
) -> None:
    """Upload a spreadsheet to an import path and print the verdict of every row."""
    parts = urlsplit(to)
    if parts.scheme not in ("http", "https") or not parts.netloc or "/v1/imports/" not in parts.path:
        raise typer.BadParameter("--to is the import path, e.g. http://127.0.0.1:8000/v1/imports/roster")
    origin = f"{parts.scheme}://{parts.netloc}"
    with httpx.Client(timeout=timeout, trust_env=False) as client:
        if token is None:
            if not (client_id and client_secret):
                raise typer.BadParameter("give --token, or --client-id and --client-secret")
            token = _token(client, origin, client_id, client_secret)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            content_type, body, length = _multipart(file, progress)
            try:
                response = client.post(
                    to,
                    params={"dry_run": "true" if dry_run else "false"},
                    content=body,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": content_type.decode(),
                        "Content-Length": str(length),
                    },
                )
            except httpx.HTTPError as exc:
                console.print(f"[red]{escape(to)} did not answer: {escape(str(exc))}[/]")
                raise typer.Exit(2) from None
    if response.status_code != 200:
        problem = response.json() if response.headers.get("content-type", "").endswith("json") else {}
        console.print(
            f"[red]{response.status_code} {escape(str(problem.get('title') or response.reason_phrase))}[/]"
        )
        if problem.get("detail"):
            console.print(escape(str(problem["detail"])))
        for error in problem.get("errors", []):
            console.print(f"  {escape(error['field'])}: {escape(error['message'])}")
        raise typer.Exit(2)
    report = response.json()
    _summary(report)
    raise typer.Exit(1 if report["errors"] else 0)
