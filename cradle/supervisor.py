"""`cradle up`: NATS, migrations, the admin client, every service and the gateway as child
processes, their logs interleaved with a name per line; Ctrl-C or SIGTERM stops them all.

With `replicas` above 1 (`--replicas`, `CRADLE_REPLICAS`), each service runs that many processes,
each on its own port and all on the service's one database, and as many gateways on consecutive
ports, each balancing over every replica; the embedded NATS is then a three-node JetStream cluster
whose streams keep three copies."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from nats.errors import Error as NatsError
from rich.console import Console
from rich.markup import escape

from cradle.layout import (
    Keys,
    database_url,
    free_port,
    gateway_env,
    listening_socket,
    service_env,
)
from cradle.nats import ADMIN, BusTrust, admin_creds_from_env, gateway_bus_env, provision
from cradle.nats_server import (
    CLUSTER_NODES,
    embedded_nats_cluster_configs,
    embedded_nats_config,
    nats_server_binary,
    wait_for_port,
)
from cradle.preflight import settings_of
from cradle.services import PROCESSES, SERVICES
from shared.events.streams import DEFAULT_NAMESPACE

COLOURS = {"nats": "grey50"} | {name: process.colour for name, process in PROCESSES.items()}
STOP_GRACE_SECONDS = 10.0
PROVISION_SECONDS = 20.0
# How long a just-started embedded cluster may take to elect its JetStream leader on a busy machine.
CLUSTER_SETTLE_SECONDS = 120.0
# A process may be degraded for a moment while it connects: readiness is read until every one is
# ready or this long has passed.
SETTLE_SECONDS = 10.0


# Linux's prctl(PR_SET_PDEATHSIG): the kernel signals a child when the process that started it dies,
# so a supervisor killed outright (SIGKILL, the OOM killer) leaves no services or NATS behind on
# the data directory it no longer locks. Loaded here, before any fork: the child only calls it.
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None


def _end_with(supervisor_pid: int) -> Callable[[], None]:
    def in_the_child() -> None:  # between fork and exec
        if _libc is not None:
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != supervisor_pid:  # it died before the call: nothing would signal us
                os.kill(os.getpid(), signal.SIGTERM)

    return in_the_child


class StartInterrupted(Exception):
    """Start-up stopped before every process was up: a child exited, or SIGINT/SIGTERM came."""


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    pump: asyncio.Task[None] = field(init=False)


class Supervisor:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.children: list[Child] = []
        self.stopping = asyncio.Event()
        self.failed: str | None = None

    def say(self, name: str, line: str, *, style: str = "") -> None:
        colour = COLOURS.get(process_of(name), "white")
        text = escape(line)  # log lines are data, not markup ("[INF]" must print as is)
        if style:
            text = f"[{style}]{text}[/]"
        self.console.print(f"[{colour}]{name:<12}[/] | {text}", highlight=False)

    async def spawn(
        self, name: str, args: list[str], env: dict[str, str], *, handed: Sequence[socket.socket] = ()
    ) -> Child:
        """`handed`: bound sockets the child serves on (its app's, its metrics listener's), handed
        down to it by descriptor."""
        process = await asyncio.create_subprocess_exec(
            *args,
            env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
            pass_fds=tuple(sock.fileno() for sock in handed),
            preexec_fn=_end_with(os.getpid()),
        )
        for sock in handed:
            sock.close()  # the child holds them now
        child = Child(name, process)
        child.pump = asyncio.create_task(self._pump(child))
        self.children.append(child)
        return child

    async def _pump(self, child: Child) -> None:
        assert child.process.stdout is not None
        while line := await child.process.stdout.readline():
            self.say(child.name, line.decode("utf-8", "replace").rstrip())
        code = await child.process.wait()
        if not self.stopping.is_set():
            self.failed = f"{child.name} exited with code {code}"
            self.say(child.name, f"exited unexpectedly with code {code}; stopping everything", style="red")
            self.stopping.set()

    async def stop_all(self) -> None:
        self.stopping.set()
        for child in reversed(self.children):  # gateway first, NATS last
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(child.process.wait(), STOP_GRACE_SECONDS)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        child.process.kill()
                    await child.process.wait()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(child.pump, 2)


async def wait_healthy(url: str, *, timeout: float = 60.0, supervisor: Supervisor | None = None) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            if supervisor is not None and supervisor.stopping.is_set():
                return  # a child exited, or a signal came: run_up says which, not "up"
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")
            await asyncio.sleep(0.2)


def replica_names(name: str, replicas: int) -> list[str]:
    """The log label of each replica of a process: `registry`, or `registry-1`, `registry-2` …"""
    return [name] if replicas == 1 else [f"{name}-{index}" for index in range(1, replicas + 1)]


def process_of(label: str) -> str:
    """`registry-2` → `registry` (a label without a replica number is the process's name)."""
    name, _, number = label.rpartition("-")
    return name if number.isdigit() and name else label


class Listeners:
    """Each process's metrics listener (`/metrics`, `/readyz` with its reasons) on a loopback socket
    `cradle up` binds and hands down, so it can read why a process is not ready."""

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}

    def env(self, label: str) -> tuple[dict[str, str], list[socket.socket]]:
        """The child's settings for its listener, and the socket to hand it."""
        variables = {s.field: s.variable for s in settings_of(PROCESSES[process_of(label)].settings)}
        if "metrics_fd" not in variables:
            return {}, []
        listening = listening_socket()
        self.urls[label] = f"http://127.0.0.1:{listening.getsockname()[1]}"
        return {variables["metrics_fd"]: str(listening.fileno())}, [listening]

    async def troubles(self, public: dict[str, str]) -> dict[str, tuple[str, list[str]]]:
        """{process: (status, reasons)} for every process not ready once they have settled."""
        deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                states = await asyncio.gather(*(self._read(client, n, u) for n, u in public.items()))
                found = dict(zip(public, states, strict=True))
                troubles = {name: state for name, state in found.items() if state[0] != "ready"}
                if not troubles or asyncio.get_running_loop().time() > deadline:
                    return troubles
                await asyncio.sleep(0.5)

    async def _read(self, client: httpx.AsyncClient, name: str, public: str) -> tuple[str, list[str]]:
        detailed = self.urls.get(name)
        for url in ([detailed] if detailed else []) + [public]:
            try:
                body = (await client.get(url + "/readyz")).json()
            except (httpx.HTTPError, ValueError):
                continue
            if isinstance(body, dict) and isinstance(body.get("status"), str):
                reasons = body.get("reasons")
                return body["status"], [str(r) for r in reasons] if isinstance(reasons, list) else []
        return "unanswered", ["/readyz did not answer"]


def serve_args(name: str, listening: socket.socket) -> list[str]:
    return [sys.executable, "-m", "cradle.serve", name, str(listening.fileno())]


async def start_nats(
    supervisor: Supervisor, base: Path, *, namespace: str, nodes: int
) -> tuple[str, BusTrust]:
    """The embedded server, or with `nodes` > 1 a cluster of that many routed to each other on
    loopback ports (each its own store under `<data>/nats/<node>`); the URL lists every node."""
    if nodes == 1:
        port = free_port()
        config, trust = embedded_nats_config(base, port=port, namespace=namespace)
        await supervisor.spawn("nats", [nats_server_binary(), "--config", str(config)], {})
        await wait_for_port("127.0.0.1", port)
        return f"nats://127.0.0.1:{port}", trust
    ports = [free_port() for _ in range(nodes)]
    configs, trust = embedded_nats_cluster_configs(
        base, ports=ports, route_ports=[free_port() for _ in range(nodes)], namespace=namespace
    )
    for label, config in zip(replica_names("nats", nodes), configs, strict=True):
        await supervisor.spawn(label, [nats_server_binary(), "--config", str(config)], {})
    for port in ports:
        await wait_for_port("127.0.0.1", port)
    return ",".join(f"nats://127.0.0.1:{port}" for port in ports), trust


async def provision_cluster(url: str, *, namespace: str, replicas: int, creds: Path | None) -> None:
    """Provision on a cluster just started: its JetStream answers with a timeout until the nodes
    have elected a meta leader, so the streams are asked for again until then."""
    deadline = asyncio.get_running_loop().time() + CLUSTER_SETTLE_SECONDS
    while True:
        try:
            await asyncio.wait_for(
                provision(url, namespace=namespace, replicas=replicas, credentials=creds), PROVISION_SECONDS
            )
            return
        except (TimeoutError, NatsError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(1.0)


async def run_up(
    *, base: Path, keys: Keys, admin_secret_shown: str | None, gateway_sockets: Sequence[socket.socket]
) -> int:
    """`gateway_sockets`: one bound port per gateway (`cradle up` binds them before anything starts);
    as many processes of every service as there are gateways."""
    replicas = len(gateway_sockets)
    console = Console(soft_wrap=True)
    supervisor = Supervisor(console)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, supervisor.stopping.set)
    try:
        nats_url = os.environ.get("NATS_URL")
        namespace = os.environ.get("CRADLE_EVENT_NAMESPACE", DEFAULT_NAMESPACE)
        trust: BusTrust | None = None
        admin_creds = admin_creds_from_env()
        stream_replicas = int(os.environ.get("CRADLE_NATS_REPLICAS", "1"))
        if not nats_url:
            # Replicated services get a replicated bus: losing one node loses no event.
            nodes = CLUSTER_NODES if replicas > 1 else 1
            nats_url, trust = await start_nats(supervisor, base, namespace=namespace, nodes=nodes)
            admin_creds = trust.creds_path(ADMIN)
            stream_replicas = nodes
        supervisor.say("nats", f"using {nats_url}")
        # The streams exist before any service starts: services may only wait for them. An external
        # server that does not answer is no reason to refuse writes (the outboxes keep the events):
        # the services start degraded, and say so.
        try:
            if trust is not None and stream_replicas > 1:
                await provision_cluster(
                    nats_url, namespace=namespace, replicas=stream_replicas, creds=admin_creds
                )
            else:
                await asyncio.wait_for(
                    provision(
                        nats_url, namespace=namespace, replicas=stream_replicas, credentials=admin_creds
                    ),
                    PROVISION_SECONDS,
                )
        except Exception as exc:
            if trust is not None:  # our own server: something is really wrong
                raise
            reason = f"{type(exc).__name__}: {exc}".rstrip(": ") if str(exc) else type(exc).__name__
            supervisor.say(
                "nats", f"{nats_url} unreachable ({reason}): streams not provisioned", style="yellow"
            )

        listeners = Listeners()
        upstreams: dict[str, list[str]] = {}
        public: dict[str, str] = {}  # each process's label → its address
        for name in SERVICES:
            creds = trust.creds_path(name) if trust is not None else None
            for label in replica_names(name, replicas):
                listening = listening_socket()
                public[label] = f"http://127.0.0.1:{listening.getsockname()[1]}"
                upstreams.setdefault(name, []).append(public[label])
                env = service_env(name, base=base, keys=keys, nats_url=nats_url, nats_creds=creds)
                metrics_env, metrics_socket = listeners.env(label)
                await supervisor.spawn(
                    label, serve_args(name, listening), env | metrics_env, handed=[listening, *metrics_socket]
                )
        await asyncio.gather(
            *(wait_healthy(url + "/healthz", supervisor=supervisor) for url in public.values())
        )

        env = gateway_env(
            base=base,
            keys=keys,
            upstreams={name: ",".join(urls) for name, urls in upstreams.items()},
            nats_url=nats_url,
        )
        if trust is not None:  # the embedded server: the gateway's credentials and device issuer keys
            env |= gateway_bus_env(trust)
        gateways: list[str] = []
        host = os.environ.get("CRADLE_GATEWAY_HOST", "127.0.0.1")
        reachable = "127.0.0.1" if host == "0.0.0.0" else host
        for listening, label in zip(gateway_sockets, replica_names("gateway", replicas), strict=True):
            port = listening.getsockname()[1]
            metrics_env, metrics_socket = listeners.env(label)
            handed = [listening, *metrics_socket]
            await supervisor.spawn(label, serve_args("gateway", listening), env | metrics_env, handed=handed)
            gateways.append(f"http://{host}:{port}")
            public[label] = f"http://{reachable}:{port}"
        await asyncio.gather(*(wait_healthy(url + "/healthz", supervisor=supervisor) for url in gateways))
        gateway = gateways[0]
        if supervisor.stopping.is_set():  # a process exited while the others started: never "up"
            raise StartInterrupted
        # Up is what every process's readiness says, not that it answers.
        troubles = await listeners.troubles(public)
        if troubles:
            console.rule("[bold yellow]Cradle is running, degraded")
            for name, (status, reasons) in troubles.items():
                for reason in reasons or [status]:
                    console.print(f"[yellow]{status:<9}[/] {name:<12} {escape(reason)}")
            console.print("(each process's /readyz, on its metrics listener, says the same)")
        else:
            console.rule("[bold green]Cradle is up")
        console.print(f"gateway      {gateway}   (API docs: {gateway}/docs)")
        for other in gateways[1:]:
            console.print(f"gateway      {other}   (a replica: the same API, the same data)")
        console.print(f"data         {base}")
        console.print("admin id     admin")
        if admin_secret_shown:
            console.print(f"admin secret [bold]{admin_secret_shown}[/]   (shown once: keep it)")
        else:
            console.print(
                "admin secret from CRADLE_ADMIN_SECRET, or the one shown when this data dir was created"
            )
        console.print(
            f"token        curl -s -X POST {gateway}/v1/auth/token "
            "-d grant_type=client_credentials -d client_id=admin -d client_secret=…"
        )
        console.rule()
        await supervisor.stopping.wait()
    except StartInterrupted:
        pass  # the pump said which process exited (supervisor.failed), or a signal came
    except (TimeoutError, FileNotFoundError) as exc:
        supervisor.failed = str(exc)
        console.print(f"[red]start-up failed: {exc}[/]")
    finally:
        console.print("[bold]stopping…[/]")
        await supervisor.stop_all()
    console.print("stopped" + (f" ({supervisor.failed})" if supervisor.failed else ""))
    return 1 if supervisor.failed else 0


__all__ = ["database_url", "run_up"]
