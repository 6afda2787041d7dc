"""`cradle`: the command line of an embedded deployment. This is the composition root: the one
place that knows every service by name."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker

from gateway import service as gateway_service
from shared.cli.audit import app as audit_app
from shared.cli.layout import DATABASES, data_dir, database_url, load_or_create_keys
from shared.db import make_engine
from shared.migrations import upgrade

if TYPE_CHECKING:
    from services.guidance.demo import SeedReport

app = typer.Typer(help="Cradle, Shanghai's childcare information platform.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
console = Console()


def migrate_all(names: tuple[str, ...] | list[str]) -> None:
    base = data_dir()
    for name in names:
        url = database_url(name, base)
        upgrade(name, url)
        console.print(f"[green]migrated[/] {name:<10} {_redact(url)}")


def _redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def _bootstrap_admin(secret: str | None) -> str | None:
    engine = make_engine(database_url("gateway", data_dir()))
    try:
        async with async_sessionmaker(engine)() as session, session.begin():
            return await gateway_service.ensure_admin_client(session=session, secret=secret)
    finally:
        await engine.dispose()


@app.command()
def migrate(
    service: list[str] = typer.Argument(None, help="Databases to migrate (default: all)."),
) -> None:
    """Apply every pending migration (default: every service's database)."""
    names = service or list(DATABASES)
    unknown = sorted(set(names) - set(DATABASES))
    if unknown:
        raise typer.BadParameter(f"unknown: {', '.join(unknown)}; known: {', '.join(DATABASES)}")
    migrate_all(names)


@app.command("seed-demo")
def seed_demo(
    facilities: int = typer.Option(3000, min=1, max=100_000, help="How many facilities to write."),
    families: int = typer.Option(
        300_000, min=0, max=2_000_000, help="How many guidance families to write (0: none)."
    ),
    seed: int = typer.Option(2026, help="The same seed writes the same city."),
) -> None:
    """Fill the registry (REGISTRY_DATABASE_URL, or SQLite under CRADLE_DATA_DIR) with a plausible
    city of facilities over the 216 街镇, and guidance (GUIDANCE_DATABASE_URL) with its stations,
    families, sessions and resources; their events leave through the outbox when it runs."""
    from rich.progress import Progress

    from services.registry.demo import seed_facilities

    migrate_all(["registry", "guidance"] if families else ["registry"])
    namespace = os.environ.get("CRADLE_EVENT_NAMESPACE", "cradle")

    async def run() -> int:
        engine = make_engine(database_url("registry", data_dir()))
        try:
            with Progress(console=console) as bar:
                task = bar.add_task("facilities", total=facilities)
                return await seed_facilities(
                    engine,
                    count=facilities,
                    seed=seed,
                    namespace=namespace,
                    progress=lambda n: bar.advance(task, n),
                )
        finally:
            await engine.dispose()

    started = time.perf_counter()
    written = asyncio.run(run())
    console.print(f"[green]{written}[/] facilities written in {time.perf_counter() - started:.1f} s")
    if families:
        _seed_guidance(families=families, seed=seed, namespace=namespace)


def _seed_guidance(*, families: int, seed: int, namespace: str) -> None:
    from rich.progress import Progress

    from services.guidance.config import GuidanceSettings
    from services.guidance.demo import seed_guidance
    from services.guidance.service.common import Guidance

    base = data_dir()
    url = database_url("guidance", base)
    keys = load_or_create_keys(base).pii["guidance"].settings()
    settings = GuidanceSettings(
        database_url=url, internal_verify_key=load_or_create_keys(base).internal_verify_key, **keys
    )

    async def run() -> SeedReport:
        engine = make_engine(url)
        try:
            with Progress(console=console) as bar:
                task = bar.add_task("families", total=families)
                return await seed_guidance(
                    engine,
                    guidance=Guidance.from_settings(settings),
                    families=families,
                    seed=seed,
                    namespace=namespace,
                    progress=lambda _step, n: bar.advance(task, n),
                )
        finally:
            await engine.dispose()

    started = time.perf_counter()
    report = asyncio.run(run())
    console.print(
        f"[green]{report.families}[/] families ({report.guardians} guardians, {report.children} children), "
        f"{report.places} places, {report.sessions} sessions, {report.bookings} bookings, "
        f"{report.resources} resources pushed {report.pushes} times, "
        f"written in {time.perf_counter() - started:.1f} s"
    )


@app.command("bootstrap-admin")
def bootstrap_admin() -> None:
    """Create the `admin` client in the gateway's database (GATEWAY_DATABASE_URL), or set its secret
    to CRADLE_ADMIN_SECRET. A generated secret is printed once."""
    shown = asyncio.run(_bootstrap_admin(os.environ.get("CRADLE_ADMIN_SECRET") or None))
    if shown:
        console.print(f"admin secret [bold]{shown}[/]   (shown once: keep it)")
    elif os.environ.get("CRADLE_ADMIN_SECRET"):
        console.print("admin secret set from CRADLE_ADMIN_SECRET")
    else:
        console.print("admin exists; set CRADLE_ADMIN_SECRET to give it a new secret")


@app.command()
def up() -> None:
    """Start NATS (unless NATS_URL is set), every service and the gateway, in the foreground."""
    from shared.cli.supervisor import run_up

    base = data_dir()
    keys = load_or_create_keys(base)
    migrate_all(DATABASES)
    shown = asyncio.run(_bootstrap_admin(os.environ.get("CRADLE_ADMIN_SECRET") or None))
    sys.exit(asyncio.run(run_up(base=base, keys=keys, admin_secret_shown=shown)))


def main() -> None:
    app()
