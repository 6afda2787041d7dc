"""`cradle audit verify`: walk the gateway's audit hash chain and name the first broken record."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

from gateway.audit import ChainReport, verify
from shared.cli.layout import data_dir, database_url
from shared.db import make_engine

app = typer.Typer(help="The gateway's audit log.", no_args_is_help=True)
console = Console()


async def verify_chain(url: str) -> ChainReport:
    engine = make_engine(url)
    try:
        return await verify(engine)
    finally:
        await engine.dispose()


@app.callback()
def audit() -> None:
    """The gateway's audit log (a hash chain of every call)."""


@app.command("verify")
def verify_command() -> None:
    """Check every record's hash and link, from the retention anchor to the chain head
    (GATEWAY_DATABASE_URL, else the SQLite file under CRADLE_DATA_DIR). Exit 1 on the first break."""
    report = asyncio.run(verify_chain(database_url("gateway", data_dir())))
    if report.ok:
        console.print(f"[green]audit chain intact[/]: {report.checked} records verified")
        return
    where = f" (request {report.request_id})" if report.request_id else ""
    console.print(
        f"[red]audit chain broken at record {report.first_broken_seq}{where}[/]: {report.problem}; "
        f"{report.checked} records before it verified"
    )
    raise typer.Exit(code=1)
