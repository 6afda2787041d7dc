"""Search benchmark: the registry's facility searches next to a trivial FastAPI GET, in the same run.

    .venv/bin/python bench/search.py [--facilities 5000] [--seconds 8] [--concurrency 16]

Builds a temp SQLite registry database (migrated, `seed_facilities` writes a plausible city), starts
the registry as a uvicorn subprocess (one worker, its own event namespace `benchsearch<hex>` on the
local NATS, its streams provisioned first, as `cradle up` does) and, as the baseline, a trivial
FastAPI app (one GET returning a list of 20 small dicts) as another uvicorn subprocess. Before
measuring, it waits for the registry's outbox relay to publish the seeded events, so the relay does
not compete with the searches.

Every scenario is driven by the same async load generator (uvloop, httpx with `sniffio` installed):
`--concurrency` workers, each looping on its GET for a 1 s warm-up (not recorded) then `--seconds`
(every latency recorded). By default each worker has its own `httpx.AsyncClient` limited to one
connection (`--concurrency` connections in all); `--shared-client` uses one client with limits of
`--concurrency` instead, which costs the generator more than twice the CPU per request (httpcore
scans its whole pool on every request), so the trivial baseline would measure the generator. Even
per worker, the generator (~0.5 ms CPU per request) and not the trivial app (~0.15 ms) bounds the
baseline's req/s: compare the server CPU per request too. Requests carry an internal identity token
signed like the gateway would (the public paths get the gateway's public identity, the list a
bureau's), re-signed every 20 s (tokens live 60 s).

Scenarios:
- trivial: the baseline app's GET (measured first and again last; ratios use the mean of both);
- near: `GET /v1/public/facilities?near=31.2304,121.4737&radius_m=3000&limit=20`, nearest first;
- filtered: `GET /v1/facilities?district_code=310115&kind=private&inclusive=true&limit=50` (bureau);
- free places: `GET /v1/public/facilities?free_places=toddler&limit=50`.

Reported: requests/s, p50/p99 ms, server CPU ms per request (from /proc, all threads), the ratios to
the trivial baseline (req/s, p99, CPU), the machine's load average, and SQLite's plan for each
search's SQL form (services/registry/service/search.py; the registry answers from its in-memory
directory, so the plans are for reference only). Any non-200 reply fails the run
(exit 1). `--analyze` runs SQLite ANALYZE after seeding (the stack never does); `--profile DIR`
samples the registry with py-spy during one more run of each search, after the measurements.
Subprocesses, the temp dir and the namespace's streams are removed on every exit path; at the
defaults the whole run takes about 50 s (80 s with --profile).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import sniffio  # noqa: F401  (httpx imports it on every request when it is missing: see BASELINES.md)
import structlog
from rich.console import Console
from rich.table import Table as RichTable

from bench.stack import NATS_URL, delete_streams, provision_streams
from cradle.layout import free_port
from cradle.migrations import upgrade
from cradle.seed.registry import seed_facilities
from shared.db import make_engine
from shared.events.streams import Namespace
from shared.identity import (
    IDENTITY_HEADER,
    PUBLIC_IDENTITY,
    ClientKind,
    Identity,
    IdentitySigner,
    generate_keypair,
)

ROOT = Path(__file__).resolve().parents[1]
WARMUP_SECONDS = 1.0
RESIGN_SECONDS = 20.0  # internal tokens live 60 s
START_TIMEOUT = 30.0
DRAIN_TIMEOUT = 30.0  # the registry's relay publishing the seeded events
REQUEST_TIMEOUT = 10.0

BUREAU = Identity(client_id="bench-edu", kind=ClientKind.bureau, bureau="EDU", scopes=["registry:read"])

TRIVIAL_APP = textwrap.dedent(
    """
    from fastapi import FastAPI

    ITEMS = [{"id": i, "name": f"item {i}", "ok": True} for i in range(20)]


    def create_app() -> FastAPI:
        app = FastAPI()

        @app.get("/items")
        async def items() -> list[dict]:
            return ITEMS

        return app
    """
)

console = Console(width=int(os.environ.get("COLUMNS", "0")) or 150)
PHASES: list[tuple[str, float]] = []


@contextlib.contextmanager
def phase(name: str) -> Any:
    started = time.perf_counter()
    try:
        yield
    finally:
        PHASES.append((name, time.perf_counter() - started))


def quiet_logs() -> None:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


# ------------------------------------------------------------------------------------------ results


@dataclass
class Scenario:
    name: str
    base: str  # "trivial" or "registry"
    path: str
    identity: Identity | None  # None: no token (the trivial app)


@dataclass
class Result:
    scenario: Scenario
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, measured window only
    statuses: Counter[int] = field(default_factory=Counter)  # every reply, warm-up included
    errors: Counter[str] = field(default_factory=Counter)  # transport errors
    bad_samples: list[str] = field(default_factory=list)
    server_cpu: float = 0.0  # seconds of the server process in the measured window
    client_cpu: float = 0.0  # seconds of this process in the measured window

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failures(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200) + sum(self.errors.values())


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def py_spy() -> str:
    return shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------- processes


class Servers:
    """The uvicorn subprocesses, their logs, and a kill that always happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, app: str, port: int, env: dict[str, str], app_dir: Path | None = None) -> None:
        log = self.workdir / f"{name}.log"
        self.logs[name] = log
        command = [
            sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        if app_dir is not None:
            command += ["--app-dir", str(app_dir)]
        with log.open("wb") as handle:
            self.processes[name] = subprocess.Popen(
                command, cwd=ROOT, env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT
            )

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.logs[name].read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


async def wait_up(url: str, servers: Servers, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1) as client:
        while time.monotonic() < deadline:
            servers.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")


def pending_outbox(db_path: Path) -> int:
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return int(connection.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0])
    finally:
        connection.close()


async def wait_drained(db_path: Path, servers: Servers) -> int:
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while (left := pending_outbox(db_path)) and time.monotonic() < deadline:
        servers.check_alive()
        await asyncio.sleep(0.2)
    return left


# ------------------------------------------------------------------------------------ load generator


class Tokens:
    """Signed identity headers, re-signed when they get older than RESIGN_SECONDS."""

    def __init__(self, signer: IdentitySigner) -> None:
        self.signer = signer
        self.cache: dict[str, tuple[float, dict[str, str]]] = {}

    def headers(self, identity: Identity | None) -> dict[str, str]:
        if identity is None:
            return {}
        now = time.monotonic()
        signed_at, headers = self.cache.get(identity.client_id, (0.0, {}))
        if now - signed_at > RESIGN_SECONDS:
            headers = {IDENTITY_HEADER: self.signer.sign(identity)}
            self.cache[identity.client_id] = (now, headers)
        return headers


async def drive(
    url: str,
    identity: Identity | None,
    tokens: Tokens,
    *,
    seconds: float,
    concurrency: int,
    server_pid: int,
    shared_client: bool = False,
) -> Result:
    """`concurrency` workers, each looping GET url: warm-up, then the measured window."""
    result = Result(scenario=None)  # type: ignore[arg-type]
    # One client per worker, one connection each (`concurrency` connections in all), by default: with
    # one client shared by all workers, httpcore scans its whole pool (has_expired, is_idle on every
    # connection) on every request, which more than doubles the generator's CPU per request.
    pools = 1 if shared_client else concurrency
    per_pool = concurrency if shared_client else 1
    limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT))
            for _ in range(pools)
        ]
        started = time.perf_counter()
        measure_from = started + WARMUP_SECONDS
        stop_at = measure_from + seconds
        latencies = result.latencies

        async def worker(client: httpx.AsyncClient) -> None:
            while True:
                begun = time.perf_counter()
                if begun >= stop_at:
                    return
                try:
                    response = await client.get(url, headers=tokens.headers(identity))
                except httpx.HTTPError as exc:
                    result.errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.01)
                    continue
                ended = time.perf_counter()
                result.statuses[response.status_code] += 1
                if response.status_code != 200 and len(result.bad_samples) < 3:
                    result.bad_samples.append(f"{response.status_code}: {response.text[:200]}")
                if begun >= measure_from and ended <= stop_at:
                    latencies.append(ended - begun)

        tasks = [asyncio.create_task(worker(clients[i % pools])) for i in range(concurrency)]
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        cpu_server, cpu_client = cpu_seconds(server_pid), time.process_time()
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        result.server_cpu = cpu_seconds(server_pid) - cpu_server
        result.client_cpu = time.process_time() - cpu_client
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=REQUEST_TIMEOUT + 5)
        result.seconds = seconds  # requests finishing after stop_at are not counted
    return result


# -------------------------------------------------------------------------------------- sanity checks


def check_reply(name: str, body: Any) -> str:
    """What one reply holds, and a RuntimeError when it is not what the scenario asked for."""
    if name == "trivial":
        if not (isinstance(body, list) and len(body) == 20):
            raise RuntimeError(f"trivial: unexpected body {str(body)[:200]}")
        return "20 dicts"
    items = body["items"]
    if not items:
        raise RuntimeError(f"{name}: no items: the seeded city should have matches")
    if name == "near":
        distances = [i["distance_m"] for i in items]
        if distances != sorted(distances) or distances[-1] > 3000:
            raise RuntimeError(f"near: distances not sorted or beyond 3 km: {distances}")
        return f"{len(items)} items, {distances[0]:.0f}–{distances[-1]:.0f} m"
    if name == "filtered":
        if any((i["district_code"], i["kind"], i["inclusive"]) != ("310115", "private", True) for i in items):
            raise RuntimeError("filtered: an item does not match the filters")
        return f"{len(items)} items"
    if name == "free places":
        if any(i["free_places"]["toddler"] <= 0 for i in items):
            raise RuntimeError("free places: an item has no free toddler place")
        return f"{len(items)} items"
    return f"{len(items)} items"


def near_candidates(db_path: Path) -> str:
    """How many facilities the near search's bounding box holds (the directory ranks all of them)."""
    import math

    from services.registry.service.search import EARTH_RADIUS_M

    lat, lon, radius = 31.2304, 121.4737, 3000
    dlat = math.degrees(radius / EARTH_RADIUS_M)
    dlon = dlat / math.cos(math.radians(lat))
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        box, approved = connection.execute(
            "SELECT count(*), sum(status = 'approved') FROM facility"
            " WHERE lat BETWEEN ? AND ? AND lon BETWEEN ? AND ?",
            (lat - dlat, lat + dlat, lon - dlon, lon + dlon),
        ).fetchone()
    finally:
        connection.close()
    return (
        f"the 3 km box holds {box} facilities, {approved} approved: ranked in memory per request "
        "(services/registry/service/directory.py), no database read"
    )


def query_plans(db_path: Path) -> dict[str, str]:
    """SQLite's plan for each search's SELECT, built the way services/registry/service/search.py builds
    it (diagnostic only: never fails the run)."""
    from sqlalchemy import select
    from sqlalchemy.dialects import sqlite

    from services.registry.models import Facility
    from services.registry.schemas import AgeClass, FacilityKind, FacilityStatus
    from services.registry.service.search import FacilityFilters, Near, filtered, visible_to

    queries = {
        "near": (None, FacilityFilters(status=FacilityStatus.approved, near=Near(31.2304, 121.4737, 3000))),
        "filtered": (
            BUREAU,
            FacilityFilters(district_code="310115", kind=FacilityKind.private, inclusive=True),
        ),
        "free places": (None, FacilityFilters(status=FacilityStatus.approved, free_places=AgeClass.toddler)),
    }
    plans: dict[str, str] = {}
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        for name, (caller, filters) in queries.items():
            with contextlib.suppress(Exception):
                query = filtered(visible_to(select(Facility), caller), filters)
                if filters.near is None:
                    query = query.order_by(Facility.id).limit(51)
                sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
                plans[name] = "; ".join(row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + sql))
    finally:
        connection.close()
    return plans


# --------------------------------------------------------------------------------------------- report


def report(results: list[Result], notes: dict[str, str], args: argparse.Namespace, total: float) -> None:
    trivial = [r for r in results if r.scenario.name == "trivial"]
    base_rps = statistics.fmean(r.rps for r in trivial) if trivial else float("nan")
    base_p99 = statistics.fmean(pct(r.latencies, 99) for r in trivial) if trivial else float("nan")
    base_cpu = (
        statistics.fmean(1000 * r.server_cpu / max(1, r.requests) for r in trivial)
        if trivial
        else float("nan")
    )
    table = RichTable(
        title=f"Registry search vs trivial FastAPI GET — {args.facilities:,} facilities, SQLite"
        f"{' (ANALYZEd)' if args.analyze else ''}, 1 uvicorn "
        f"worker each, httpx load generator {args.concurrency} concurrent "
        f"({'one shared client' if args.shared_client else 'one client per worker'}), "
        f"{args.seconds:g} s per scenario "
        f"after {WARMUP_SECONDS:g} s warm-up",
        title_justify="left",
    )
    table.add_column("scenario")
    table.add_column("req/s", justify="right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("server CPU ms/req", justify="right")
    table.add_column("vs trivial req/s", justify="right")
    table.add_column("vs trivial p99", justify="right")
    table.add_column("vs trivial CPU", justify="right")
    table.add_column("non-200", justify="right")
    table.add_column("reply")
    for r in results:
        cpu = 1000 * r.server_cpu / max(1, r.requests)
        is_base = r.scenario.name == "trivial"
        bad = r.failures
        table.add_row(
            f"{r.scenario.name}\n[dim]{r.scenario.path}[/dim]",
            f"{r.rps:,.0f}",
            f"{1000 * pct(r.latencies, 50):.2f}",
            f"{1000 * pct(r.latencies, 99):.2f}",
            f"{cpu:.2f}",
            "baseline" if is_base else f"{r.rps / base_rps:.2f}x",
            "baseline" if is_base else f"{pct(r.latencies, 99) / base_p99:.2f}x",
            "baseline" if is_base else f"{cpu / base_cpu:.1f}x",
            f"[red]{bad}[/red]" if bad else "0",
            notes.get(r.scenario.name, ""),
        )
    console.print(table)
    client = ", ".join(f"{r.scenario.name} {1000 * r.client_cpu / max(1, r.requests):.2f}" for r in results)
    console.print(
        f"baseline (mean of {len(trivial)} trivial runs): {base_rps:,.0f} req/s, "
        f"p99 {1000 * base_p99:.2f} ms, "
        f"server CPU {base_cpu:.2f} ms/req; load generator CPU ms/req: {client}"
    )
    for name, note in notes.items():
        if name.startswith("_"):
            console.print(f"{name[1:]}: {note}")
    load = os.getloadavg()
    console.print(
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) "
        f"on {os.cpu_count()} cores"
    )
    console.print(f"total run time {total:.1f} s")
    console.print("phases: " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in PHASES))


# ----------------------------------------------------------------------------------------------- main


async def seed(url: str, count: int, namespace: str) -> int:
    engine = make_engine(url)
    try:
        return await seed_facilities(engine, count=count, seed=2026, namespace=namespace)
    finally:
        await engine.dispose()


async def run(args: argparse.Namespace, workdir: Path, ns: Namespace, servers: Servers) -> int:
    started = time.perf_counter()
    db_path = workdir / "registry.db"
    url = f"sqlite+aiosqlite:///{db_path}"
    with phase("migrate"):
        await asyncio.to_thread(upgrade, "registry", url)
    with phase(f"seed {args.facilities}"):
        written = await seed(url, args.facilities, ns.name)
    if written != args.facilities:
        raise RuntimeError(f"seed wrote {written} facilities, not {args.facilities}")
    if args.analyze:
        # Not what a fresh deployment has: nothing in the stack runs ANALYZE, and without statistics
        # SQLite's planner prefers the `status` index for the near and free-places searches.
        with phase("ANALYZE"):
            connection = sqlite3.connect(db_path)
            try:
                connection.execute("ANALYZE")
                connection.commit()
            finally:
                connection.close()

    private_pem, public_pem = generate_keypair()
    app_dir = workdir / "trivial"
    app_dir.mkdir()
    (app_dir / "bench_trivial_app.py").write_text(TRIVIAL_APP)
    registry_port, trivial_port = free_port(), free_port()
    common = {"CRADLE_LOG_LEVEL": "WARNING", "CRADLE_LOG_FORMAT": "json"}
    with phase("provision streams"):
        await provision_streams(NATS_URL, ns.name)  # as `cradle up` does before the services start
    with phase("start servers"):
        servers.start(
            "registry",
            "services.registry.app:create_app",
            registry_port,
            {
                **common,
                "REGISTRY_DATABASE_URL": url,
                "CRADLE_INTERNAL_VERIFY_KEY": public_pem,
                "NATS_URL": NATS_URL,
                "CRADLE_EVENT_NAMESPACE": ns.name,
            },
        )
        servers.start("trivial", "bench_trivial_app:create_app", trivial_port, common, app_dir=app_dir)
        registry, trivial = f"http://127.0.0.1:{registry_port}", f"http://127.0.0.1:{trivial_port}"
        await asyncio.gather(wait_up(f"{registry}/readyz", servers), wait_up(f"{trivial}/items", servers))
    with phase("outbox drain"):
        left = await wait_drained(db_path, servers)
    notes: dict[str, str] = {}
    if left:
        notes["_warning"] = f"{left} seeded events still unpublished: the relay ran during the measurements"

    near = "/v1/public/facilities?near=31.2304,121.4737&radius_m=3000&limit=20"
    listed = "/v1/facilities?district_code=310115&kind=private&inclusive=true&limit=50"
    free = "/v1/public/facilities?free_places=toddler&limit=50"
    scenarios = [
        Scenario("trivial", "trivial", "/items", None),
        Scenario("near", "registry", near, PUBLIC_IDENTITY),
        Scenario("filtered", "registry", listed, BUREAU),
        Scenario("free places", "registry", free, PUBLIC_IDENTITY),
        Scenario("trivial", "trivial", "/items", None),
    ]
    bases = {"trivial": trivial, "registry": registry}
    pids = {"trivial": servers.pid("trivial"), "registry": servers.pid("registry")}
    tokens = Tokens(IdentitySigner(private_pem))

    # One checked request each before any load: right status, right content.
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT) as client:
        for s in scenarios:
            response = await client.get(bases[s.base] + s.path, headers=tokens.headers(s.identity))
            if response.status_code != 200:
                raise RuntimeError(f"{s.name}: {response.status_code} {response.text[:300]}")
            notes.setdefault(s.name, check_reply(s.name, response.json()))
    notes["_near"] = near_candidates(db_path)
    for name, plan in query_plans(db_path).items():
        notes[f"_plan {name}"] = plan

    results: list[Result] = []
    for s in scenarios:
        with phase(s.name):
            result = await drive(
                bases[s.base] + s.path,
                s.identity,
                tokens,
                seconds=args.seconds,
                concurrency=args.concurrency,
                server_pid=pids[s.base],
                shared_client=args.shared_client,
            )
        result.scenario = s
        results.append(result)
        servers.check_alive()

    if args.profile is not None:
        # After the measurements, so the sampler never weighs on the figures above.
        args.profile.mkdir(parents=True, exist_ok=True)
        for s in scenarios:
            if s.base != "registry":
                continue
            out = args.profile / f"{s.name.replace(' ', '_')}.txt"
            sampler = await asyncio.create_subprocess_exec(
                py_spy(), "record", "--format", "raw", "--rate", "250", "--duration", f"{args.seconds:g}",
                "--pid", str(pids["registry"]), "--output", str(out),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            with phase(f"profile {s.name}"):
                await asyncio.sleep(0.3)  # py-spy attaches; the drive's own warm-up covers the rest
                await drive(
                    bases[s.base] + s.path,
                    s.identity,
                    tokens,
                    seconds=args.seconds,
                    concurrency=args.concurrency,
                    server_pid=pids[s.base],
                    shared_client=args.shared_client,
                )
                await asyncio.wait_for(sampler.wait(), timeout=30)
            notes[f"_profile {s.name}"] = f"py-spy collapsed stacks in {out}"

    report(results, notes, args, time.perf_counter() - started)
    failed = [r for r in results if r.failures]
    if failed:
        for r in failed:
            non_200 = {status: n for status, n in r.statuses.items() if status != 200}
            console.print(
                f"[red bold]FAIL {r.scenario.name}: non-200 {non_200}, "
                f"transport errors {dict(r.errors)}[/red bold]"
            )
            for sample in r.bad_samples:
                console.print(f"  [red]{sample}[/red]")
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facilities", type=int, default=5000, help="facilities to seed (default 5000)")
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="measured seconds per scenario (default 8)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent requests (default 16)")
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="run SQLite ANALYZE after seeding (planner statistics; the services never do it themselves)",
    )
    parser.add_argument(
        "--shared-client",
        action="store_true",
        help="one httpx.AsyncClient for all workers (limits = concurrency) instead of one per worker",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="after the measurements, sample the registry with py-spy during each search; "
        "collapsed stacks go here",
    )
    args = parser.parse_args()
    if args.profile is not None and not Path(py_spy()).exists():
        parser.error("--profile needs py-spy: .venv/bin/pip install py-spy")
    if not 1 <= args.facilities <= 50_000:
        parser.error("--facilities must be between 1 and 50000")
    if not 1 <= args.seconds <= 60:
        parser.error("--seconds must be between 1 and 60")
    if not 1 <= args.concurrency <= 256:
        parser.error("--concurrency must be between 1 and 256")
    quiet_logs()

    ns = Namespace(f"benchsearch{uuid.uuid4().hex[:8]}")
    workdir = Path(tempfile.mkdtemp(prefix="cradle-bench-search-"))
    servers = Servers(workdir)
    previous_term = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        try:
            import uvloop

            runner: Callable[..., int] = uvloop.run
        except ImportError:
            runner = asyncio.run
        budget = 120 + (8 if args.profile else 5) * (args.seconds + 1) + args.facilities / 500
        return runner(asyncio.wait_for(run(args, workdir, ns, servers), timeout=budget))
    except Exception as exc:
        console.print(f"[red bold]benchmark failed: {type(exc).__name__}: {exc}[/red bold]")
        for name in servers.processes:
            if tail := servers.tail(name):
                console.print(f"[dim]--- {name} log tail ---\n{tail}[/dim]")
        return 1
    finally:
        servers.stop()
        with contextlib.suppress(Exception):
            asyncio.run(delete_streams(NATS_URL, ns.name))
        shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous_term)


if __name__ == "__main__":
    sys.exit(main())
