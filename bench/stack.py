"""What every benchmark that starts services needs, done as `cradle up` and the tests do it: keys made
for the run (like tests/conftest.py's `keys` fixture), the namespace's streams provisioned before any
service starts (services only wait for them), uvicorn subprocesses that are stopped on every exit
path, and a bootstrap admin client in the gateway's database.

Imported by the scripts beside it (`from bench.stack import ...`); not a benchmark itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
from sqlalchemy.ext.asyncio import async_sessionmaker

from cradle.layout import Keys, PiiKeys, free_port
from cradle.layout import gateway_env as layout_gateway_env
from cradle.layout import service_env as layout_service_env
from cradle.nats import provision
from cradle.nats_server import nats_server_args, wait_for_port
from cradle.services import PERSONAL_DATA, SERVICES
from gateway import service as gateway_service
from gateway.hashing import Argon2Cost, SecretHasher
from shared.db import make_engine
from shared.events.streams import Namespace, stream_configs
from shared.identity import generate_keypair
from shared.pii import new_key

ROOT = Path(__file__).resolve().parents[1]
# The machine's shared NATS (anonymous, JetStream), for the scripts that do not start their own.
NATS_URL = os.environ.get("CRADLE_BENCH_NATS_URL", "nats://127.0.0.1:4222")
ADMIN_SECRET = "bench-admin-" + uuid.uuid4().hex
QUIET = {"CRADLE_LOG_FORMAT": "json", "CRADLE_LOG_LEVEL": "WARNING"}


def bench_keys() -> Keys:
    """Every key a stack needs, new for this run: identity signing pair, client-token key, each
    personal-data service's AES and lookup keys, the gateway's audit HMAC key and checkpoint key."""
    private_pem, public_pem = generate_keypair()
    keys = Keys(private_pem, public_pem, {"bench1": secrets.token_urlsafe(48)}, "bench1")
    keys.pii = {service: PiiKeys({"b1": new_key()}, "b1", new_key()) for service in PERSONAL_DATA}
    keys.audit_hmac_key = new_key()
    keys.audit_signing_key = generate_keypair()[0]
    return keys


def namespace(prefix: str) -> str:
    """A subject namespace of the run's own, so runs on a shared NATS never meet."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def service_env(name: str, *, database_url: str, keys: Keys, nats_url: str, ns: str) -> dict[str, str]:
    """A service's environment as `cradle up` builds it (keys, PII keys where it holds personal data),
    on the benchmark's database, NATS and namespace, logging warnings only."""
    env = layout_service_env(name, base=ROOT, keys=keys, nats_url=nats_url)
    return env | QUIET | {f"{name.upper()}_DATABASE_URL": database_url, "CRADLE_EVENT_NAMESPACE": ns}


def gateway_env(
    *,
    keys: Keys,
    upstreams: dict[str, str],
    database_url: str,
    nats_url: str,
    ns: str,
    rate_limits: dict[str, dict[str, float]] | None = None,
) -> dict[str, str]:
    """The gateway's environment as `cradle up` builds it: signing, token, PII and audit keys, and the
    NATS its audit checkpoints go to; `rate_limits` over the defaults (`GATEWAY_RATE_LIMITS`). A
    service not in `upstreams` gets a free port nobody listens on (its paths answer 503), never the
    default ports, where another stack on this machine may be running."""
    upstreams = {name: f"http://127.0.0.1:{free_port()}" for name in SERVICES} | upstreams
    env = layout_gateway_env(base=ROOT, keys=keys, upstreams=upstreams, nats_url=nats_url)
    env |= QUIET | {"GATEWAY_DATABASE_URL": database_url, "CRADLE_EVENT_NAMESPACE": ns}
    if rate_limits:
        env["GATEWAY_RATE_LIMITS"] = json.dumps(rate_limits)
    return env


async def provision_streams(nats_url: str, ns: str) -> None:
    """The provisioning step `cradle up` runs before the services (anonymous: the bench's NATS has
    no accounts)."""
    await provision(nats_url, namespace=ns, replicas=1, credentials=None)


async def delete_streams(nats_url: str, ns: str) -> None:
    """The namespace's streams off a shared server (each may already be gone)."""
    nc = await nats.connect(nats_url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0)
    try:
        js = nc.jetstream(timeout=5)
        for config in stream_configs(Namespace(ns), replicas=1):
            with contextlib.suppress(Exception):
                await js.delete_stream(config.name)
    finally:
        await nc.close()


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary directory for the run's databases, logs and NATS store, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Subprocesses appended to the list are terminated (then killed) in reverse order on exit."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(20)
            if process.poll() is None:
                process.kill()
                process.wait(5)


async def start_nats(work: Path, started: list[subprocess.Popen[bytes]]) -> str:
    """A nats-server of the run's own (JetStream, store under `work`); returns its URL once it listens."""
    port = free_port()
    with (work / "nats.log").open("wb") as log:
        started.append(
            subprocess.Popen(  # noqa: ASYNC220  (a server for the whole run, not awaited)
                nats_server_args(port=port, store_dir=work / "nats"), stdout=log, stderr=log
            )
        )
    await wait_for_port("127.0.0.1", port)
    return f"nats://127.0.0.1:{port}"


def uvicorn(
    app: str, port: int, env: dict[str, str], log: Path | None = None, *, fast: bool = False
) -> subprocess.Popen[bytes]:
    """One worker, no access log, as `cradle up` runs each process; `fast` names uvloop and httptools
    explicitly. Output goes to `log` when given."""
    command = [
        sys.executable, "-m", "uvicorn", "--factory", app, "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    if fast:
        command += ["--loop", "uvloop", "--http", "httptools"]
    output = log.open("wb") if log is not None else None
    try:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
        )
    finally:
        if output is not None:
            output.close()  # the child holds its own copy


def tail(log: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


async def wait_healthy(
    url: str,
    process: subprocess.Popen[bytes],
    timeout: float = 60,
    log: Path | None = None,
    *,
    degraded_ok: bool = False,
) -> None:
    """Until `url`/readyz says `ready`: the process is up and its streams are there. `degraded_ok`
    for a gateway in front of only the services a bench runs (the others are down: degraded)."""
    wanted = {"ready", "degraded"} if degraded_ok else {"ready"}
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{url} exited with {process.returncode}\n{tail(log) if log else ''}")
            with contextlib.suppress(httpx.TransportError, ValueError):
                if (await client.get(url + "/readyz", timeout=1)).json().get("status") in wanted:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {timeout:.0f}s\n{tail(log) if log else ''}")


async def ensure_admin(database_url: str) -> None:
    """The bootstrap admin client (secret ADMIN_SECRET), as `cradle up` makes it, hashed at the
    gateway's default (production) argon2 cost."""
    engine = make_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as session, session.begin():
            await gateway_service.ensure_admin_client(
                session=session, hasher=SecretHasher(Argon2Cost()), secret=ADMIN_SECRET
            )
    finally:
        await engine.dispose()
