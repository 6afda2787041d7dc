"""Outbox relay benchmark: what the transactional outbox costs next to a raw JetStream publish loop.

    .venv/bin/python bench/outbox_relay.py [--events N] [--backend sqlite|postgres|both]

For each backend (SQLite in a temp dir; PostgreSQL in a fresh database that the script creates and
drops) it measures, against a baseline taken in the same run on the same NATS server:

- baseline: raw nats-py `publish_async` of N 400-byte messages with `Nats-Msg-Id` headers to a stream
  of the benchmark's own, all acks awaited;
- write: N events through `shared.events.outbox.emit`, 100 per transaction, committed;
- relay: `OutboxRelay.relay_once()` in a loop until the outbox is drained (first SELECT/publish to the
  last row marked sent), and the ratio relay / baseline;
- latency: 200 single-event transactions one at a time with the relay running (`start()`, woken on
  commit through ON_OUTBOX_COMMIT), time from the commit (stamped in the after_commit hook that wakes
  the relay) to the message reaching a JetStream ordered consumer (and a core NATS subscriber) on
  the subject: p50 / p99 in ms.

Each run uses its own stream namespace (`bench<hex>`), created by the provisioning step
(`cradle.nats.provision`, as `cradle migrate` runs it) and deleted at the end. Loopback only;
every loop is bounded; the whole run stays well under a minute at N=5000.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import nats
import structlog
from nats.js.api import DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from rich.console import Console
from rich.table import Table as RichTable
from sqlalchemy import MetaData, Row, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cradle.nats import provision
from shared.contracts import EVENT_MODELS
from shared.db import ON_OUTBOX_COMMIT, is_sqlite, make_engine
from shared.events.bus import EventBus
from shared.events.envelope import CloudEvent, DomainEvent
from shared.events.outbox import OutboxRelay, OutboxWriter, emit, outbox_session_info
from shared.events.streams import Namespace, stream_configs
from shared.events.tables import inbox_table, outbox_table
from shared.observability import Metrics

NATS_URL = os.environ.get("CRADLE_BENCH_NATS_URL", "nats://127.0.0.1:4222")
PG_ADMIN_URL = os.environ.get("CRADLE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MESSAGE_BYTES = 400
TXN_SIZE = 100
LATENCY_EVENTS = 200
LATENCY_TIMEOUT = 3.0  # per event; the relay's poll interval is 2 s, so a missed wake still shows up
POLL_SECONDS = 2.0
BATCH_SIZE = 256  # shared.settings default outbox_batch_size

console = Console(width=int(os.environ.get("COLUMNS", "0")) or 150)


PHASES: list[tuple[str, float]] = []  # wall time of every phase, printed under the table


@contextlib.contextmanager
def phase(name: str) -> Any:
    started = time.perf_counter()
    try:
        yield
    finally:
        PHASES.append((name, time.perf_counter() - started))


def quiet_logs() -> None:
    """The bus and relay log through structlog: warnings and errors only, on stderr, so stdout is the
    table. (`outbox_publish_failed` would still show.)"""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


# --------------------------------------------------------------------------------------------- events


class BenchEmitted(DomainEvent):
    event_type: ClassVar[str] = "cradle.registry.bench.emitted"
    n: str  # fixed width, so every envelope has the same size
    pad: str = ""

    def subject_id(self) -> str:
        return self.n


class BenchProbe(BenchEmitted):
    event_type: ClassVar[str] = "cradle.registry.bench.probe"


# The outbox writes only events with a contract; the bench's own events get one here.
EVENT_MODELS.update({model.event_type: model for model in (BenchEmitted, BenchProbe)})


def pad_for(target: int) -> str:
    """Padding that makes the stored CloudEvent (the message body the relay publishes) `target` bytes."""
    sample = BenchEmitted(n=f"{0:08d}")
    envelope = CloudEvent(
        source="/cradle/bench",
        type=sample.event_type,
        subject=sample.subject_id(),
        data=sample.model_dump(mode="json"),
    )
    size = len(envelope.model_dump_json(exclude_none=True).encode())
    return "x" * max(0, target - size)


# ------------------------------------------------------------------------------------------ results


@dataclass
class BackendResult:
    backend: str
    baseline_rate: float = 0.0
    baseline_batched_rate: float = 0.0
    write_rate: float = 0.0
    write_seconds: float = 0.0
    relay_rate: float = 0.0
    relay_seconds: float = 0.0
    relay_calls: int = 0
    relay_breakdown: dict[str, float] = field(default_factory=dict)
    stored: int = 0
    payload_bytes: int = 0
    lat_js: list[float] = field(default_factory=list)
    lat_core: list[float] = field(default_factory=list)
    lat_timeouts: int = 0
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# ----------------------------------------------------------------------------------------- baseline


async def baseline(js: Any, subject: str, n: int, payload: bytes) -> float:
    """Raw publish_async of n messages (unique Nats-Msg-Id each), then await every ack."""
    start = time.perf_counter()
    futures = [
        await js.publish_async(subject, payload, headers={"Nats-Msg-Id": uuid.uuid4().hex}) for _ in range(n)
    ]
    acks = await asyncio.wait_for(asyncio.gather(*futures), timeout=30)
    elapsed = time.perf_counter() - start
    if any(a.duplicate for a in acks):
        raise RuntimeError("baseline: unexpected duplicate acks")
    return n / elapsed


async def baseline_batched(js: Any, subject: str, n: int, payload: bytes, batch: int) -> float:
    """The same, but in batches of `batch` awaited one after the other: the relay's publishing pattern
    without any database work, to separate the cost of batching from the cost of the database."""
    start = time.perf_counter()
    left = n
    while left > 0:
        size = min(batch, left)
        futures = [
            await js.publish_async(subject, payload, headers={"Nats-Msg-Id": uuid.uuid4().hex})
            for _ in range(size)
        ]
        await asyncio.wait_for(asyncio.gather(*futures), timeout=30)
        left -= size
    return n / (time.perf_counter() - start)


# ----------------------------------------------------------------------------------------- the relay


class TimedRelay(OutboxRelay):
    """OutboxRelay with its two inner steps timed; behaviour unchanged."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.t_publish = 0.0
        self.t_record = 0.0

    async def _publish(self, rows: Sequence[Row]) -> tuple[list[int], dict[int, str]]:
        started = time.perf_counter()
        try:
            return await super()._publish(rows)
        finally:
            self.t_publish += time.perf_counter() - started

    async def _record(
        self, session: AsyncSession, rows: Sequence[Row], acked: list[int], failures: dict[int, str]
    ) -> None:
        started = time.perf_counter()
        try:
            await super()._record(session, rows, acked, failures)
        finally:
            self.t_record += time.perf_counter() - started


async def stream_messages(js: Any, stream: str) -> int:
    return (await js.stream_info(stream)).state.messages


async def run_backend(
    backend: str, url: str, engine: AsyncEngine, ns: Namespace, n: int, main_js: Any, baseline_subject: str
) -> BackendResult:
    result = BackendResult(backend=backend)
    metadata = MetaData()
    outbox = outbox_table(metadata)
    inbox_table(metadata)
    with phase(f"{backend}: create tables"):
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)

    pad = pad_for(MESSAGE_BYTES)
    raw_payload = b"x" * MESSAGE_BYTES
    registry_stream = ns.stream("registry")

    # Baseline in the same run, right before the outbox phases (the machine drifts over minutes).
    phase_start = time.perf_counter()
    await baseline(main_js, baseline_subject, 200, raw_payload)  # warm-up
    result.baseline_rate = await baseline(main_js, baseline_subject, n, raw_payload)
    result.baseline_batched_rate = await baseline_batched(
        main_js, baseline_subject, n, raw_payload, BATCH_SIZE
    )

    PHASES.append((f"{backend}: baselines", time.perf_counter() - phase_start))

    # ---- write: N events via emit, TXN_SIZE per transaction -------------------------------------
    writer = OutboxWriter(outbox, ns, "/cradle/bench")
    write_maker: async_sessionmaker[AsyncSession] = async_sessionmaker(
        engine, expire_on_commit=False, info=outbox_session_info(writer)
    )
    counter = 0
    started = time.perf_counter()
    for _ in range(0, n, TXN_SIZE):
        async with write_maker() as session, session.begin():
            for _ in range(min(TXN_SIZE, n - counter)):
                await emit(session, BenchEmitted(n=f"{counter:08d}", pad=pad))
                counter += 1
    result.write_seconds = time.perf_counter() - started
    result.write_rate = n / result.write_seconds
    async with write_maker() as session:
        result.payload_bytes = int(
            (await session.execute(select(func.max(func.length(outbox.c.payload))))).scalar_one() or 0
        )
        written = (await session.execute(select(func.count()).select_from(outbox))).scalar_one()
    if written != n:
        raise RuntimeError(f"write: expected {n} outbox rows, found {written}")

    # ---- relay: drain with relay_once() until nothing is pending ----------------------------------
    bus = EventBus(url=NATS_URL, namespace=ns, replicas=1, client_name=f"bench-relay-{backend}")
    bus.start()
    latency_relay: OutboxRelay | None = None
    subs: list[Any] = []
    try:
        with phase(f"{backend}: bus connect + wait for streams"):
            await asyncio.wait_for(bus.wait_ready(), timeout=10)
        # Initialise nats-py's async-publish reply subscription outside the timed section, like the
        # baseline's warm-up does (one round trip to the server).
        assert bus.js is not None
        await (await bus.js.publish_async(baseline_subject, raw_payload))
        before = await stream_messages(main_js, registry_stream)
        relay = TimedRelay(
            maker=write_maker,
            table=outbox,
            bus=bus,
            metrics=Metrics("bench"),
            lock_rows=not is_sqlite(url),
            batch_size=BATCH_SIZE,
            poll_seconds=POLL_SECONDS,
        )
        max_calls = 4 * (n // BATCH_SIZE + 2)
        published = 0
        started = time.perf_counter()
        for _ in range(max_calls):
            result.relay_calls += 1
            got = await relay.relay_once()
            published += got
            if got == 0:
                break
        result.relay_seconds = time.perf_counter() - started
        left = await relay.pending_count()
        if left:
            raise RuntimeError(
                f"relay: {left} events still pending after {result.relay_calls} relay_once calls"
            )
        result.relay_rate = n / result.relay_seconds
        result.relay_breakdown = {
            "publish+acks": relay.t_publish,
            "mark sent": relay.t_record,
            "select/commit/other": result.relay_seconds - relay.t_publish - relay.t_record,
        }
        result.stored = await stream_messages(main_js, registry_stream) - before
        if result.stored != n:
            result.notes.append(f"stream gained {result.stored} messages for {n} events")
        if published != n:
            result.notes.append(f"relay_once reported {published} acks for {n} events")

        # ---- latency: one event per transaction, relay running and woken on commit ---------------
        latency_relay = OutboxRelay(
            maker=write_maker,  # replaced below: the woken relay needs the ON_OUTBOX_COMMIT info
            table=outbox,
            bus=bus,
            metrics=Metrics("bench"),
            lock_rows=not is_sqlite(url),
            batch_size=BATCH_SIZE,
            poll_seconds=POLL_SECONDS,
        )
        info = outbox_session_info(writer)
        commit_times: list[float] = []

        def wake_on_commit() -> None:
            # The after_commit hook: the database has committed. Stamp it, then wake the relay
            # exactly as shared/service.py wires `relay.wake`.
            commit_times.append(time.perf_counter())
            latency_relay.wake()

        info[ON_OUTBOX_COMMIT] = wake_on_commit
        live_maker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            engine, expire_on_commit=False, info=info
        )
        latency_relay.maker = live_maker

        waiting: dict[str, dict[str, asyncio.Future[float]]] = {}

        def arrived(kind: str) -> Any:
            async def callback(msg: Any) -> None:
                now = time.perf_counter()
                event_id = (msg.headers or {}).get("Nats-Msg-Id")
                futures = waiting.get(event_id or "")
                if futures is not None and not futures[kind].done():
                    futures[kind].set_result(now)

            return callback

        probe_subject = ns.subject(BenchProbe.event_type)
        subs.append(
            await main_js.subscribe(
                probe_subject,
                cb=arrived("js"),
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.NEW,
            )
        )
        subs.append(await main_js._nc.subscribe(probe_subject, cb=arrived("core")))
        await main_js._nc.flush()

        phase_start = time.perf_counter()
        latency_relay.start()
        await asyncio.sleep(0.1)  # the relay is now parked on its wake-up event / poll
        loop = asyncio.get_running_loop()
        for i in range(LATENCY_EVENTS):
            commit_times.clear()
            async with live_maker() as session, session.begin():
                envelope = await emit(session, BenchProbe(n=f"{i:08d}", pad=pad))
                futures = {"js": loop.create_future(), "core": loop.create_future()}
                waiting[envelope.id] = futures
            if not commit_times:
                raise RuntimeError("latency: the after_commit hook did not wake the relay")
            committed = commit_times[0]  # stamped in after_commit, before the relay can run
            try:
                done_at = await asyncio.wait_for(asyncio.shield(futures["js"]), timeout=LATENCY_TIMEOUT)
                result.lat_js.append((done_at - committed) * 1000)
                if futures["core"].done():
                    result.lat_core.append((futures["core"].result() - committed) * 1000)
            except TimeoutError:
                result.lat_timeouts += 1
            waiting.pop(envelope.id, None)
        PHASES.append((f"{backend}: latency", time.perf_counter() - phase_start))
    finally:
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        with phase(f"{backend}: relay stop + bus close"):
            if latency_relay is not None:
                await latency_relay.stop()
            await bus.close()
    return result


# ------------------------------------------------------------------------------------------ backends


async def sqlite_backend(ns: Namespace, n: int, js: Any, baseline_subject: str) -> BackendResult:
    with tempfile.TemporaryDirectory(prefix="cradle-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'outbox.db'}"
        engine = make_engine(url)
        try:
            return await run_backend("sqlite", url, engine, ns, n, js, baseline_subject)
        finally:
            await engine.dispose()


async def pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql, timeout=20)
    finally:
        await conn.close()


async def postgres_reachable() -> bool:
    try:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=2)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


async def postgres_backend(ns: Namespace, n: int, js: Any, baseline_subject: str) -> BackendResult:
    name = f"cradle_{ns.name}"
    with phase("postgres: CREATE DATABASE"):
        await pg_admin(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        engine = make_engine(url)
        try:
            return await run_backend("postgres", url, engine, ns, n, js, baseline_subject)
        finally:
            with phase("postgres: engine dispose"):
                await engine.dispose()
    finally:
        with phase("postgres: DROP DATABASE"), contextlib.suppress(Exception):
            await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------------------------- report


def report(results: list[BackendResult], n: int, total_seconds: float, ns: Namespace) -> None:
    table = RichTable(
        title=f"Outbox relay vs raw JetStream publish_async — N={n}, {MESSAGE_BYTES} B messages, "
        f"namespace {ns.name}",
        title_justify="left",
    )
    table.add_column("backend")
    table.add_column("measure")
    table.add_column("figure", justify="right")
    table.add_column("notes")
    for r in results:
        if r.error:
            table.add_row(r.backend, "[red]failed[/red]", "", r.error)
            table.add_section()
            continue
        table.add_row(
            r.backend,
            "baseline: publish_async, all N in flight",
            f"{r.baseline_rate:,.0f} ev/s",
            "raw nats-py, Nats-Msg-Id, every ack awaited",
        )
        table.add_row(
            "",
            f"baseline: publish_async, batches of {BATCH_SIZE}",
            f"{r.baseline_batched_rate:,.0f} ev/s",
            "each batch's acks awaited before the next (relay's pattern, no DB)",
        )
        table.add_row(
            "",
            f"outbox write: emit(), {TXN_SIZE}/txn",
            f"{r.write_rate:,.0f} ev/s",
            f"{r.write_seconds:.2f} s, payload {r.payload_bytes} B",
        )
        breakdown = ", ".join(f"{k} {v:.2f}s" for k, v in r.relay_breakdown.items())
        table.add_row(
            "",
            f"relay drain: relay_once() x{r.relay_calls}",
            f"{r.relay_rate:,.0f} ev/s",
            f"{r.relay_seconds:.2f} s ({breakdown}); stream +{r.stored}",
        )
        table.add_row(
            "",
            "relay / baseline (all in flight)",
            f"{r.relay_rate / r.baseline_rate:.2f}x",
            f"vs batches of {BATCH_SIZE}: {r.relay_rate / r.baseline_batched_rate:.2f}x",
        )
        table.add_row(
            "",
            "latency commit -> JetStream consumer",
            f"p50 {pct(r.lat_js, 50):.2f} / p99 {pct(r.lat_js, 99):.2f} ms",
            f"{len(r.lat_js)}/{LATENCY_EVENTS} events, max {max(r.lat_js, default=float('nan')):.2f} ms, "
            f"timeouts {r.lat_timeouts}; poll interval {POLL_SECONDS * 1000:.0f} ms",
        )
        table.add_row(
            "",
            "latency commit -> core NATS subscriber",
            f"p50 {pct(r.lat_core, 50):.2f} / p99 {pct(r.lat_core, 99):.2f} ms",
            f"mean {statistics.fmean(r.lat_core) if r.lat_core else float('nan'):.2f} ms",
        )
        for note in r.notes:
            table.add_row("", "[yellow]note[/yellow]", "", note)
        table.add_section()
    console.print(table)
    console.print(f"total run time {total_seconds:.1f} s")
    console.print("phases: " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in PHASES))


# ----------------------------------------------------------------------------------------------- main


async def main(n: int, backend: str) -> int:
    started = time.perf_counter()
    ns = Namespace(f"bench{uuid.uuid4().hex[:8]}")
    baseline_stream = f"{ns.name}_BASELINE".upper()
    baseline_subject = f"{ns.name}_baseline.msgs"
    backends = ["sqlite", "postgres"] if backend == "both" else [backend]
    if "postgres" in backends and not await postgres_reachable():
        if backend == "postgres":
            console.print(f"[red]PostgreSQL is not reachable at {PG_ADMIN_URL}[/red]")
            return 2
        console.print("[yellow]PostgreSQL not reachable: SQLite only[/yellow]")
        backends.remove("postgres")

    nc = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0)
    js = nc.jetstream(timeout=10)
    results: list[BackendResult] = []
    exit_code = 0
    try:
        # As `cradle migrate` does: the provisioning step (anonymous here: the bench's NATS has no auth).
        await provision(NATS_URL, namespace=ns.name, replicas=1, credentials=None)
        await js.add_stream(
            StreamConfig(
                name=baseline_stream,
                subjects=[f"{ns.name}_baseline.>"],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,  # like the service streams
                discard=DiscardPolicy.OLD,
                num_replicas=1,
                duplicate_window=120.0,
            )
        )
        for name in backends:
            runner = sqlite_backend if name == "sqlite" else postgres_backend
            try:
                budget = 45 + n / 500  # seconds; ~55 s at the default N
                results.append(await asyncio.wait_for(runner(ns, n, js, baseline_subject), timeout=budget))
            except Exception as exc:
                exit_code = 1
                results.append(BackendResult(backend=name, error=f"{type(exc).__name__}: {exc}"[:300]))
    finally:
        for config in [*stream_configs(ns, replicas=1), StreamConfig(name=baseline_stream)]:
            with contextlib.suppress(Exception):
                await js.delete_stream(config.name)
        await nc.close()
    report(results, n, time.perf_counter() - started, ns)
    return exit_code


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="events per phase (default 5000)")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    quiet_logs()
    if not 1 <= args.events <= 100_000:
        parser.error("--events must be between 1 and 100000")
    sys.exit(asyncio.run(main(args.events, args.backend)))


if __name__ == "__main__":
    cli()
