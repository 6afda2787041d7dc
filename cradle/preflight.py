"""Checks `cradle up` makes before it starts anything, so a misconfiguration is one line naming the
setting or the fix (and a non-zero exit), never a traceback nor a false "up"."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import fcntl
import inspect
import os
import socket
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import EnvSettingsSource, SettingsError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from shared.db import make_engine
from shared.settings import CradleSettings

DATABASE_CHECK_SECONDS = 10.0
DRIVERS = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+asyncpg": "postgresql",
    "sqlite": "sqlite",
    "sqlite+aiosqlite": "sqlite",
}


class Misconfigured(SystemExit):
    """One line for the operator on stderr, then exit 1: a SystemExit, as shared.pii_keys.LostKeys,
    so wherever it is raised there is no traceback."""

    def __init__(self, line: str) -> None:
        self.line = line
        super().__init__(line)


# ----- the settings each process reads -------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    variable: str  # the environment variable (or `<variable>_FILE`)
    field: str
    description: str


def settings_of(settings_class: type[CradleSettings]) -> list[Setting]:
    """Every environment variable a settings class reads, with a line about it: the field's
    description, else its type and default."""
    source = EnvSettingsSource(settings_class)
    found = []
    for name, field in settings_class.model_fields.items():
        variables = [env.upper() for _key, env, _complex in source._extract_field_info(field, name)]
        if field.description:
            about = field.description
        else:
            kind = _type_name(field.annotation)
            if field.is_required():
                about = f"{kind}, required"
            else:
                default = field.get_default(call_default_factory=True)
                shown = "unset" if default is None else repr(default)
                about = f"{kind}, default {shown}" if len(shown) <= 40 else f"{kind}"
        found.append(Setting(variables[0], name, about))
    return found


def variable_for(settings_class: type[CradleSettings], location: object) -> str:
    """The environment variable behind a validation error's location (a field name or an alias)."""
    wanted = str(location).upper()
    for setting in settings_of(settings_class):
        if wanted in (setting.field.upper(), setting.variable):
            return setting.variable
    return str(location)


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """`values` over the process's environment for the block: settings classes read os.environ."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_settings(name: str, settings_class: type[CradleSettings], env: Mapping[str, str]) -> None:
    """The process's settings as it will read them (this environment plus what `cradle up` gives
    it): the first wrong value, by its variable, and what is wrong."""
    with environment(env):
        try:
            settings_class()
        except ValidationError as exc:
            error = exc.errors()[0]
            where = variable_for(settings_class, error["loc"][0]) if error["loc"] else name
            given = error.get("input")
            short = isinstance(given, str | int | float) and len(str(given)) < 60
            shown = f" (got {given!r})" if short else ""
            message = error["msg"].removeprefix("Value error, ")
            if "PII" in where or "KEY" in where or "SECRET" in where:
                shown = ""  # never echo a key
            raise Misconfigured(f"{where}: {message}{shown}") from None
        except SettingsError as exc:
            raise Misconfigured(f"{name}: {exc}") from None


# ----- the data directory, ports, databases --------------------------------------------------------


class DataDirLock:
    """An OS lock on `<data>/cradle.lock` for as long as `cradle up` runs: a second one on the same
    data directory stops at once. The kernel drops it when the process ends, however it ends."""

    def __init__(self, base: Path) -> None:
        self.path = base / "cradle.lock"
        self.handle: IO[str] | None = None

    def acquire(self) -> None:
        handle = open(self.path, "a+")  # held open as long as the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise Misconfigured(
                f"CRADLE_DATA_DIR: {self.path.parent} is in use by another `cradle up` (pid {holder}); "
                "stop it, or set CRADLE_DATA_DIR to another directory"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def bind_port(host: str, port: int, *, variable: str) -> socket.socket:
    """The port bound and listening from the check on, held until the process that serves on it is
    handed the socket: checked and bound later, another program could take it in between (a busy
    machine did, while NATS, the migrations and the services started)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = "is in use" if exc.errno == 98 else f"cannot be used ({exc.strerror})"
        raise Misconfigured(
            f"{variable}: {host}:{port} {reason}; stop what listens there or set {variable} to a free port"
        ) from None
    sock.set_inheritable(True)
    return sock


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable>"


def check_database_url(variable: str, url: str) -> str:
    """The URL's kind ("postgresql" or "sqlite"), or one line on what is wrong with it."""
    try:
        driver = make_url(url).drivername
    except ArgumentError:
        raise Misconfigured(
            f"{variable}: not a database URL; e.g. postgresql://user@host:5432/name "
            "or sqlite:///path/to/file.db"
        ) from None
    if driver not in DRIVERS:
        raise Misconfigured(
            f"{variable}: unsupported database {driver!r}; "
            "use postgresql://… (PostgreSQL) or sqlite:///… (SQLite)"
        )
    return DRIVERS[driver]


async def check_database(variable: str, url: str) -> None:
    """Connect once (PostgreSQL): unreachable, refused credentials and a missing database are one line."""
    kind = check_database_url(variable, url)
    if kind == "sqlite":
        database = make_url(url).database
        if database and database != ":memory:" and not Path(database).parent.is_dir():
            raise Misconfigured(f"{variable}: the directory of {database} does not exist")
        return
    where = _redacted(url)
    engine = make_engine(url)
    try:
        async with asyncio.timeout(DATABASE_CHECK_SECONDS):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except TimeoutError:
        raise Misconfigured(
            f"{variable}: {where} did not answer within {DATABASE_CHECK_SECONDS:g} s; check the host and port"
        ) from None
    except DBAPIError as exc:  # the server answered: credentials, database name, permissions
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise Misconfigured(f"{variable}: {where} refused the connection: {reason}") from None
    except OSError as exc:  # refused, unknown host, unreachable network
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise Misconfigured(f"{variable}: cannot reach {where}: {reason}") from None
    finally:
        await engine.dispose()


def check_replicable(replicas: int, urls: Mapping[str, str]) -> None:
    """Replicas share their service's database: SQLite takes one writer at a time, so more than one
    replica needs every database on PostgreSQL (one line naming the first that is not)."""
    if replicas == 1:
        return
    for variable, url in urls.items():
        if check_database_url(variable, url) == "sqlite":
            raise Misconfigured(
                f"CRADLE_REPLICAS: {replicas} replicas need PostgreSQL, but {variable} is SQLite "
                "(one writer at a time); set every <SERVICE>_DATABASE_URL to PostgreSQL, or run one replica"
            )


class UpSettings(CradleSettings):
    """What `cradle up` reads for itself (each process's own settings are in its settings class)."""

    data_dir: Path = Field(
        default=Path("var"),
        validation_alias="CRADLE_DATA_DIR",
        description="SQLite databases, the NATS store and generated keys (default ./var)",
    )
    gateway_host: str = Field(
        default="127.0.0.1", validation_alias="CRADLE_GATEWAY_HOST", description="the gateway's address"
    )
    gateway_port: int = Field(
        default=8000, ge=1, le=65535, validation_alias="CRADLE_GATEWAY_PORT", description="the gateway's port"
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=8,
        validation_alias="CRADLE_REPLICAS",
        description="processes per service, and gateways on consecutive ports from CRADLE_GATEWAY_PORT "
        "(above 1: PostgreSQL only, and the embedded NATS a three-node cluster)",
    )
    admin_secret: SecretStr | None = Field(
        default=None,
        validation_alias="CRADLE_ADMIN_SECRET",
        description="the bootstrap `admin` client's secret (default: generated once, shown once)",
    )
    nats_url: str | None = Field(
        default=None,
        validation_alias="NATS_URL",
        description="an external NATS server (comma-separated: a cluster); default an embedded one",
    )
    nats_admin_creds: Path | None = Field(
        default=None,
        validation_alias="NATS_ADMIN_CREDS",
        description="with NATS_URL: the .creds that provisions the streams",
    )
    event_namespace: str = Field(
        default="cradle",
        validation_alias="CRADLE_EVENT_NAMESPACE",
        description="the first token of every subject and stream name",
    )


def up_settings() -> UpSettings:
    try:
        return UpSettings()
    except ValidationError as exc:
        error = exc.errors()[0]
        where = variable_for(UpSettings, error["loc"][0]) if error["loc"] else "cradle up"
        given = error.get("input")
        shown = f" (got {given!r})" if isinstance(given, str) and "SECRET" not in where else ""
        raise Misconfigured(f"{where}: {error['msg']}{shown}") from None
    except SettingsError as exc:
        raise Misconfigured(str(exc)) from None


def _field_comments(settings_class: type[CradleSettings]) -> dict[str, str]:
    """The comment on each field's line, or the comment lines just above it, in its class's source:
    the settings classes say what a field is in comments, which `up --help` shows."""
    found: dict[str, str] = {}
    for cls in reversed(settings_class.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, CradleSettings)) or cls is CradleSettings:
            continue
        try:
            lines, start = inspect.getsourcelines(cls)
        except (OSError, TypeError):
            continue
        tree = ast.parse(textwrap.dedent("".join(lines)))
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node in body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            line = lines[node.lineno - 1]
            comment = line.split("  # ", 1)[1].strip() if "  # " in line else ""
            above = node.lineno - 2
            block: list[str] = []
            while above >= 0 and lines[above].strip().startswith("#"):
                block.insert(0, lines[above].strip().lstrip("#").strip())
                above -= 1
            text_ = comment or " ".join(block)
            if text_:
                found[node.target.id] = text_.split(". ")[0].rstrip(".")
    return found


def _type_name(annotation: object) -> str:
    name = getattr(annotation, "__name__", None) if not hasattr(annotation, "__args__") else None
    shown = name or str(annotation)
    for prefix in ("typing.", "pydantic.types.", "pathlib.", "shared.settings.", "gateway.config."):
        shown = shown.replace(prefix, "")
    return shown


def settings_help() -> dict[str, list[Setting]]:
    """Every environment variable `cradle up` and the processes it starts read, with a line each,
    by who reads it: generated from the settings classes (their descriptions, comments, types and
    defaults)."""
    from cradle.services import GATEWAY, PROCESSES, SERVICES

    groups: dict[str, list[Setting]] = {"cradle up": settings_of(UpSettings), "every service": []}
    own = {setting.variable for setting in groups["cradle up"]}
    owners: dict[str, list[str]] = {}
    about: dict[str, Setting] = {}
    for process in [*SERVICES.values(), GATEWAY]:  # a shared variable described as a service reads it
        comments = _field_comments(process.settings)
        for setting in settings_of(process.settings):
            if setting.variable in own:
                continue
            owners.setdefault(setting.variable, []).append(process.name)
            line = comments.get(setting.field)
            described = f"{line} ({setting.description})" if line else setting.description
            about.setdefault(setting.variable, Setting(setting.variable, setting.field, described))
    for process in PROCESSES:
        groups.setdefault(process, [])
    for variable, names in owners.items():
        if len(names) == 1:
            group = names[0]
        else:
            group = "every service" if set(SERVICES) <= set(names) else ", ".join(names)
        groups.setdefault(group, []).append(about[variable])
    return {group: settings for group, settings in groups.items() if settings}
