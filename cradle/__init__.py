"""`cradle`: the command line of an embedded deployment. This is the composition root: the one
place that knows every service by name."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cradle.audit import app as audit_app
from cradle.dlq import app as dlq_app
from cradle.keys import app as keys_app
from cradle.layout import DATABASES, data_dir, database_url, load_or_create_keys, load_pii_keys
from cradle.nats import admin_creds_from_env, provision
from cradle.nats import app as nats_app
from gateway import service as gateway_service
from gateway.hashing import Argon2Cost, SecretHasher
from shared.db import make_engine
from shared.migrations import upgrade

app = typer.Typer(help="Cradle, Shanghai's childcare information platform.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(nats_app, name="nats")
app.add_typer(dlq_app, name="dlq")
app.add_typer(keys_app, name="keys")
console = Console()


@app.callback()
def private_files() -> None:
    # Databases (and their -wal/-shm), the NATS store and key files hold personal data and secrets:
    # everything this process and its children create is the owner's alone (0600 files, 0700 dirs).
    os.umask(0o077)


def migrate_all(names: tuple[str, ...] | list[str]) -> None:
    base = data_dir()
    for name in names:
        url = database_url(name, base)
        if name == "gateway":  # its migration encrypts existing parents' phones with the gateway's keys
            for variable, value in load_pii_keys("gateway", base / "keys").env("gateway").items():
                if variable + "_FILE" not in os.environ:  # then the migration reads the file itself
                    os.environ.setdefault(variable, value)
        upgrade(name, url)
        console.print(f"[green]migrated[/] {name:<10} {_redact(url)}")


def _redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def _bootstrap_admin(secret: str | None) -> str | None:
    engine = make_engine(database_url("gateway", data_dir()))
    # The same cost the gateway will verify with (GATEWAY_SECRET_HASHING, else the production default).
    cost = os.environ.get("GATEWAY_SECRET_HASHING")
    hasher = SecretHasher(Argon2Cost.model_validate_json(cost) if cost else Argon2Cost())
    try:
        async with async_sessionmaker(engine)() as session, session.begin():
            return await gateway_service.ensure_admin_client(session=session, hasher=hasher, secret=secret)
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
    # With an external NATS (production), the streams are part of the schema: provisioned here,
    # with the admin credential (NATS_ADMIN_CREDS), before any service starts.
    if os.environ.get("NATS_URL"):
        asyncio.run(
            provision(
                os.environ["NATS_URL"],
                namespace=os.environ.get("CRADLE_EVENT_NAMESPACE", "cradle"),
                replicas=int(os.environ.get("CRADLE_NATS_REPLICAS", "1")),
                credentials=admin_creds_from_env(),
            )
        )
        console.print(f"[green]provisioned[/] streams on {os.environ['NATS_URL']}")


class Scale(StrEnum):
    small = "small"
    city = "city"


# `seed-demo --scale` presets; an option given explicitly overrides its preset's figure.
SCALES: dict[Scale, dict[str, int]] = {
    Scale.small: {"facilities": 250, "practitioners": 3_000, "cameras": 2_000, "families": 2_000},
    Scale.city: {"facilities": 2_000, "practitioners": 60_000, "cameras": 20_000, "families": 300_000},
}


class _Rate(ProgressColumn):
    """Rows a second over the whole step so far."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time or task.elapsed
        counts = task.fields.get("counts", True)
        rate = task.completed / elapsed if counts and elapsed and task.completed else None
        return Text(f"{rate:>9,.0f}/s" if rate else " " * 11, style="progress.data.speed")


class _Steps:
    """A progress bar per step of the seeding, added when the step first reports."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.tasks: dict[str, TaskID] = {}
        self.rows: dict[str, int] = {}

    def report(self, step: str, done: int, total: int | None) -> None:
        """`total` None: a step that only says it is running."""
        if step not in self.tasks:
            self.tasks[step] = self.bar.add_task(step, total=total, counts=total is not None)
        self.bar.update(self.tasks[step], completed=done, total=total)
        self.rows[step] = done

    def counter(self, step: str, total: int) -> Callable[[int], None]:
        """For seeders that report each batch's size rather than how far they are."""
        self.report(step, 0, total)
        return lambda n: self.report(step, self.rows[step] + n, total)


@app.command("seed-demo")
def seed_demo(
    scale: Scale = typer.Option(
        Scale.city, help="Preset sizes: small (tests, CI) or city (Shanghai's order of magnitude)."
    ),
    facilities: int | None = typer.Option(
        None, min=1, max=100_000, help="Facilities to write (small: 250, city: 2,000)."
    ),
    practitioners: int | None = typer.Option(
        None, min=0, max=1_000_000, help="Workforce practitioners to write (0: none; city: 60,000)."
    ),
    cameras: int | None = typer.Option(
        None, min=0, max=1_000_000, help="Monitoring cameras to write (0: none; city: 20,000)."
    ),
    families: int | None = typer.Option(
        None, min=0, max=2_000_000, help="Guidance families to write (0: none; city: 300,000)."
    ),
    seed: int = typer.Option(2026, help="The same seed writes the same city."),
) -> None:
    """Fill every service's database (<SERVICE>_DATABASE_URL, or SQLite under CRADLE_DATA_DIR) with
    a plausible city: the registry's facilities over the 216 街镇; the workforce's projection of them,
    practitioners (encrypted ID numbers), certificates and employments; monitoring's projection and
    cameras; guidance's stations, families, sessions and resources. Their events leave through the
    outboxes when the services run."""
    preset = SCALES[scale]
    n_facilities = facilities if facilities is not None else preset["facilities"]
    n_practitioners = practitioners if practitioners is not None else preset["practitioners"]
    n_cameras = cameras if cameras is not None else preset["cameras"]
    n_families = families if families is not None else preset["families"]
    namespace = os.environ.get("CRADLE_EVENT_NAMESPACE", "cradle")
    console.print(
        f"seeding [bold]{scale.value}[/]: {n_facilities:,} facilities, {n_practitioners:,} practitioners, "
        f"{n_cameras:,} cameras, {n_families:,} families (seed {seed})"
    )
    started = time.perf_counter()
    wanted = {
        "registry": True,
        "workforce": n_practitioners > 0,
        "monitoring": n_cameras > 0,
        "guidance": n_families > 0,
    }
    migrate_all([name for name, on in wanted.items() if on])
    migrated = time.perf_counter() - started
    laps = asyncio.run(
        _seed_city(
            facilities=n_facilities,
            practitioners=n_practitioners,
            cameras=n_cameras,
            families=n_families,
            seed=seed,
            namespace=namespace,
        )
    )
    table = Table(title="seed-demo", show_edge=False)
    for column in ("step", "seconds"):
        table.add_column(column, justify="left" if column == "step" else "right")
    table.add_row("migrations", f"{migrated:.1f}")
    for name, seconds in laps:
        table.add_row(name, f"{seconds:.1f}", style="dim" if name.startswith("  ") else None)
    table.add_row("[bold]total[/]", f"[bold]{time.perf_counter() - started:.1f}[/]")
    console.print(table)


async def _seed_city(
    *, facilities: int, practitioners: int, cameras: int, families: int, seed: int, namespace: str
) -> list[tuple[str, float]]:
    """Every service's seeding, one after the other; returns each step's time (its parts indented)."""
    from services.registry.demo import seed_facilities
    from shared.events.envelope import CloudEvent

    base = data_dir()
    keys = load_or_create_keys(base)
    laps: list[tuple[str, float]] = []
    columns = (
        TextColumn("[bold]{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _Rate(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        steps = _Steps(bar)

        # The registry's facility events, as it writes them to its outbox. This is the composition
        # root: handing them to the workforce's and monitoring's seeders is what NATS would do, and
        # their projections are built from them exactly as their consumers would (same facts,
        # version and event time), so the real events, when the outbox relay sends them, change
        # nothing. No service reads another's database.
        events: list[CloudEvent] = []
        clock = time.perf_counter()
        async with _engine("registry", base) as engine:
            written = await seed_facilities(
                engine,
                count=facilities,
                seed=seed,
                namespace=namespace,
                progress=steps.counter("registry facilities", facilities),
                events_out=events,
            )
        seconds = time.perf_counter() - clock
        laps.append(("registry", seconds))
        console.print(f"[green]{written:,}[/] facilities written in {seconds:.1f} s")

        if practitioners:
            from services.workforce.config import WorkforceSettings
            from services.workforce.demo import seed_workforce
            from services.workforce.service.common import Workforce

            clock = time.perf_counter()
            url = database_url("workforce", base)
            settings = WorkforceSettings(
                database_url=url,
                internal_verify_key=keys.internal_verify_key,
                **keys.pii["workforce"].settings(),  # type: ignore[arg-type]
            )
            async with _engine("workforce", base) as engine:
                staff = await seed_workforce(
                    engine,
                    workforce=Workforce.from_settings(settings),
                    facilities=events,
                    practitioners=practitioners,
                    seed=seed,
                    namespace=namespace,
                    progress=steps.report,
                )
            seconds = time.perf_counter() - clock
            laps.append(("workforce", seconds))
            laps.extend((f"  {name}", seconds) for name, seconds in staff.seconds.items())
            console.print(
                f"[green]{staff.practitioners:,}[/] practitioners ({staff.certificates:,} certificates, "
                f"{staff.employments:,} active employments incl. {staff.directors:,} directors, "
                f"{staff.ended_employments:,} ended), {staff.facilities:,} projected facilities, "
                f"{staff.staffing_events:,} staffing events ({staff.out_of_ratio:,} out of ratio), "
                f"written in {seconds:.1f} s"
            )

        if cameras:
            from services.monitoring.demo import seed_monitoring

            clock = time.perf_counter()
            async with _engine("monitoring", base) as engine:
                watch = await seed_monitoring(
                    engine, facilities=events, cameras=cameras, seed=seed, progress=steps.report
                )
            seconds = time.perf_counter() - clock
            laps.append(("monitoring", seconds))
            laps.extend((f"  {name}", seconds) for name, seconds in watch.seconds.items())
            console.print(
                f"[green]{watch.cameras:,}[/] cameras at {watch.facilities_with_cameras:,} facilities, "
                f"{watch.facilities:,} projected facilities, written in {seconds:.1f} s"
            )

        if families:
            from services.guidance.config import GuidanceSettings
            from services.guidance.demo import seed_guidance
            from services.guidance.service.common import Guidance

            clock = time.perf_counter()
            url = database_url("guidance", base)
            guidance_settings = GuidanceSettings(
                database_url=url,
                internal_verify_key=keys.internal_verify_key,
                **keys.pii["guidance"].settings(),  # type: ignore[arg-type]
            )
            family_step = steps.counter("guidance families", families)
            after_families = "guidance the rest"  # visits, sessions, bookings, resources: no counts

            def on_families(_step: str, n: int) -> None:
                family_step(n)
                if steps.rows["guidance families"] >= families and after_families not in steps.tasks:
                    steps.report(after_families, 0, None)

            async with _engine("guidance", base) as engine:
                report = await seed_guidance(
                    engine,
                    guidance=Guidance.from_settings(guidance_settings),
                    families=families,
                    seed=seed,
                    namespace=namespace,
                    progress=on_families,
                )
            steps.report(after_families, 1, 1)
            seconds = time.perf_counter() - clock
            laps.append(("guidance", seconds))
            laps.extend((f"  {name}", seconds) for name, seconds in report.seconds.items())
            console.print(
                f"[green]{report.families:,}[/] families ({report.guardians:,} guardians, "
                f"{report.children:,} children), {report.places:,} places, {report.sessions:,} sessions, "
                f"{report.bookings:,} bookings, {report.resources:,} resources pushed {report.pushes:,} "
                f"times, written in {seconds:.1f} s"
            )
    return laps


@asynccontextmanager
async def _engine(name: str, base: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url(name, base))
    try:
        yield engine
    finally:
        await engine.dispose()


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
    from cradle.supervisor import run_up

    base = data_dir()
    keys = load_or_create_keys(base)
    migrate_all(DATABASES)
    shown = asyncio.run(_bootstrap_admin(os.environ.get("CRADLE_ADMIN_SECRET") or None))
    sys.exit(asyncio.run(run_up(base=base, keys=keys, admin_secret_shown=shown)))


def main() -> None:
    app()
