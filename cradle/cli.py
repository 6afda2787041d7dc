"""`cradle`: the command line of an embedded deployment, reading the one table of processes
(cradle/services.py) for `up`, `migrate`, `seed-demo` and the rest."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterator
from enum import StrEnum
from importlib.metadata import version
from pathlib import Path

import click
import typer
from nats.errors import Error as NatsError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker
from typer.core import TyperCommand

from cradle.audit import app as audit_app
from cradle.dlq import app as dlq_app
from cradle.imports import import_file
from cradle.keys import app as keys_app
from cradle.layout import (
    Keys,
    data_dir,
    database_url,
    gateway_env,
    load_or_create_keys,
    load_pii_keys,
    service_env,
)
from cradle.migrations import upgrade
from cradle.nats import admin_creds_from_env, provision
from cradle.nats import app as nats_app
from cradle.preflight import (
    DataDirLock,
    Misconfigured,
    bind_port,
    check_database,
    check_replicable,
    check_settings,
    settings_help,
    up_settings,
)
from cradle.seed import RateColumn, SeedRun, Steps
from cradle.services import GATEWAY, PROCESSES, SERVICES, load
from gateway import service as gateway_service
from gateway.hashing import Argon2Cost, SecretHasher
from shared.db import make_engine

app = typer.Typer(help="Cradle, Shanghai's childcare information platform.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(nats_app, name="nats")
app.add_typer(dlq_app, name="dlq")
app.add_typer(keys_app, name="keys")
app.command("import")(import_file)
console = Console()


def _show_version(wanted: bool) -> None:
    if wanted:
        print(f"cradle {version('cradle')}")
        raise typer.Exit()


@app.callback()
def private_files(
    _version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    # Databases (and their -wal/-shm), the NATS store and key files hold personal data and secrets:
    # everything this process and its children create is the owner's alone (0600 files, 0700 dirs).
    os.umask(0o077)


def migrate_all(names: tuple[str, ...] | list[str]) -> None:
    base = data_dir()
    for name in names:
        url = database_url(name, base)
        keys: dict[str, str] = {}
        if name == "gateway":  # its migration encrypts existing parents' phones with the gateway's keys
            keys = {
                variable: value
                for variable, value in load_pii_keys("gateway", base / "keys").env("gateway").items()
                # a variable already given (or its _FILE, which the migration reads itself) wins
                if variable not in os.environ and variable + "_FILE" not in os.environ
            }
        with environment(keys):
            upgrade(name, url)
        console.print(f"[green]migrated[/] {name:<10} {_redact(url)}")


@contextlib.contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """`variables` in os.environ for the block only: a migration run in-process (tests, `seed-demo`)
    must not hand its keys to every process started after it."""
    os.environ.update(variables)
    try:
        yield
    finally:
        for variable in variables:
            os.environ.pop(variable, None)


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
    names = service or list(PROCESSES)
    unknown = sorted(set(names) - set(PROCESSES))
    if unknown:
        raise typer.BadParameter(f"unknown: {', '.join(unknown)}; known: {', '.join(PROCESSES)}")
    asyncio.run(_check_databases(data_dir(), names))
    migrate_all(names)
    # With an external NATS (production), the streams are part of the schema: provisioned here,
    # with the admin credential (NATS_ADMIN_CREDS), before any service starts.
    if os.environ.get("NATS_URL"):
        try:
            asyncio.run(
                provision(
                    os.environ["NATS_URL"],
                    namespace=os.environ.get("CRADLE_EVENT_NAMESPACE", "cradle"),
                    replicas=int(os.environ.get("CRADLE_NATS_REPLICAS", "1")),
                    credentials=admin_creds_from_env(),
                )
            )
        except (OSError, NatsError, TimeoutError) as exc:
            raise Misconfigured(
                f"NATS_URL: cannot provision the streams on {os.environ['NATS_URL']} "
                f"({type(exc).__name__}: {exc}); check the URL, NATS_ADMIN_CREDS and NATS_TLS_CA"
            ) from None
        console.print(f"[green]provisioned[/] streams on {os.environ['NATS_URL']}")


class Scale(StrEnum):
    small = "small"
    city = "city"


# `seed-demo --scale` presets; an option given explicitly overrides its preset's figure.
SCALES: dict[Scale, dict[str, int]] = {
    Scale.small: {"facilities": 250, "practitioners": 3_000, "cameras": 2_000, "families": 2_000},
    Scale.city: {"facilities": 2_000, "practitioners": 60_000, "cameras": 20_000, "families": 300_000},
}


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
    given = {
        "facilities": facilities,
        "practitioners": practitioners,
        "cameras": cameras,
        "families": families,
    }
    counts = {name: value if value is not None else preset[name] for name, value in given.items()}
    namespace = os.environ.get("CRADLE_EVENT_NAMESPACE", "cradle")
    console.print(
        f"seeding [bold]{scale.value}[/]: {counts['facilities']:,} facilities, "
        f"{counts['practitioners']:,} practitioners, {counts['cameras']:,} cameras, "
        f"{counts['families']:,} families (seed {seed})"
    )
    started = time.perf_counter()
    seeded = [
        name
        for name, process in SERVICES.items()
        if process.seed_quantity and counts[process.seed_quantity] > 0
    ]
    asyncio.run(_check_databases(data_dir(), seeded))
    migrate_all(seeded)
    migrated = time.perf_counter() - started
    laps = asyncio.run(_seed_city(counts=counts, seed=seed, namespace=namespace))
    table = Table(title="seed-demo", show_edge=False)
    for column in ("step", "seconds"):
        table.add_column(column, justify="left" if column == "step" else "right")
    table.add_row("migrations", f"{migrated:.1f}")
    for name, seconds in laps:
        table.add_row(name, f"{seconds:.1f}", style="dim" if name.startswith("  ") else None)
    table.add_row("[bold]total[/]", f"[bold]{time.perf_counter() - started:.1f}[/]")
    console.print(table)


async def _seed_city(*, counts: dict[str, int], seed: int, namespace: str) -> list[tuple[str, float]]:
    """Every service's seeding step in the table's order (those given a count above 0); returns
    each step's time (its parts indented)."""
    base = data_dir()
    columns = (
        TextColumn("[bold]{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        run = SeedRun(
            base=base,
            keys=load_or_create_keys(base),
            seed=seed,
            namespace=namespace,
            steps=Steps(bar),
            console=console,
        )
        for process in SERVICES.values():
            if process.seeder and process.seed_quantity and counts[process.seed_quantity] > 0:
                await load(process.seeder)(run, counts[process.seed_quantity])
    return run.laps


@app.command("bootstrap-admin")
def bootstrap_admin() -> None:
    """Create the `admin` client in the gateway's database (GATEWAY_DATABASE_URL), or set its secret
    to CRADLE_ADMIN_SECRET. A generated secret is printed once."""
    asyncio.run(_check_databases(data_dir(), [GATEWAY.name]))
    shown = asyncio.run(_bootstrap_admin(os.environ.get("CRADLE_ADMIN_SECRET") or None))
    if shown:
        console.print(f"admin secret [bold]{shown}[/]   (shown once: keep it)")
    elif os.environ.get("CRADLE_ADMIN_SECRET"):
        console.print("admin secret set from CRADLE_ADMIN_SECRET")
    else:
        console.print("admin exists; set CRADLE_ADMIN_SECRET to give it a new secret")


class _UpCommand(TyperCommand):
    """`cradle up --help` ends with every setting it and its processes read, generated from their
    settings classes when the help is shown (not at every start of the command line)."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        table = Table(title="Settings (environment; <VAR>_FILE names a file holding the value)", box=None)
        table.add_column("variable", style="bold", no_wrap=True)
        table.add_column("what")
        for group, settings in settings_help().items():
            table.add_row(f"[dim]— {escape(group)}[/]", "")
            for setting in settings:
                table.add_row(setting.variable, escape(setting.description))
        Console().print(table)


@app.command(cls=_UpCommand)
def up(
    replicas: int | None = typer.Option(
        None,
        min=1,
        max=8,
        help="Processes per service and gateways (default CRADLE_REPLICAS, else 1); above 1 needs "
        "PostgreSQL, and the embedded NATS runs as a three-node cluster.",
    ),
) -> None:
    """Start NATS (unless NATS_URL is set), every service and the gateway, in the foreground. Before
    anything starts, the data directory is locked (one `cradle up` each), and the gateway's port,
    every database, the keys and every process's settings are checked: a problem is one line naming
    the setting, and nothing starts."""
    from cradle.supervisor import run_up

    settings = up_settings()
    replicas = replicas or settings.replicas
    base = data_dir()
    check_replicable(
        replicas, {f"{name.upper()}_DATABASE_URL": database_url(name, base) for name in PROCESSES}
    )
    lock = DataDirLock(base)
    lock.acquire()
    gateway_sockets: list[socket.socket] = []
    try:
        for index in range(replicas):  # the gateways' ports, one after another, held from here on
            port = settings.gateway_port + index
            gateway_sockets.append(bind_port(settings.gateway_host, port, variable="CRADLE_GATEWAY_PORT"))
        asyncio.run(_check_databases(base, list(PROCESSES)))
        keys = load_or_create_keys(base)
        _check_process_settings(base, keys, nats_url=settings.nats_url)
        migrate_all(list(PROCESSES))
        shown = asyncio.run(_bootstrap_admin(os.environ.get("CRADLE_ADMIN_SECRET") or None))
        code = asyncio.run(
            run_up(base=base, keys=keys, admin_secret_shown=shown, gateway_sockets=gateway_sockets)
        )
    finally:
        for sock in gateway_sockets:
            sock.close()  # handed down by now, or never used
        lock.release()
    sys.exit(code)


async def _check_databases(base: Path, names: list[str]) -> None:
    """These processes' databases, at once; the first problem in the table's order is reported."""
    checks = [check_database(f"{name.upper()}_DATABASE_URL", database_url(name, base)) for name in names]
    for outcome in await asyncio.gather(*checks, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


def _check_process_settings(base: Path, keys: Keys, *, nats_url: str | None) -> None:
    """Each process's settings as it will read them, before any starts (the NATS and upstream
    addresses, known only once they run, stand in as loopback ones)."""
    bus = nats_url or "nats://127.0.0.1:4222"
    for name, process in PROCESSES.items():
        if name == GATEWAY.name:
            upstreams = {service: "http://127.0.0.1:8001" for service in SERVICES}
            env = gateway_env(base=base, keys=keys, upstreams=upstreams, nats_url=bus)
        else:
            env = service_env(name, base=base, keys=keys, nats_url=bus)
        check_settings(name, process.settings, env)


def main() -> None:
    try:
        app()
    except SettingsError as exc:  # e.g. both <VAR> and <VAR>_FILE set: the message names them
        print(exc, file=sys.stderr)
        sys.exit(1)
    except NatsError as exc:  # a command that needs the bus (dlq, audit verify, nats …) and none answers
        url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
        print(f"NATS_URL: {url}: {exc}; check NATS_URL, the .creds given and NATS_TLS_CA", file=sys.stderr)
        sys.exit(1)
