"""Webhook delivery benchmark: deliveries per second to 50 local subscribers, next to the raw
JetStream consume rate measured in the same run, and the latency from an event's commit to a
receiver's 2xx.

    .venv/bin/python bench/delivery.py [--events N] [--subscribers 50] [--backend sqlite|postgres]

- baseline: a pull consumer of the benchmark's own on the same stream fetches and acks the same N
  events (batches of 256): messages per second, the median of 5 such consumers in turn;
- delivery: the delivery service (its real app: consumers, event log, fan-out, sender) with 50
  subscriptions (bureau clients, `cradle.registry.**`), each to its own URL on a receiver process on
  127.0.0.1 (uvicorn, answers 204). N registry events are published to the registry's stream as
  its outbox relay publishes them; one event to one subscriber is one delivery. Deliveries per
  second from the first publish to the last delivery recorded (its `delivered_at`), and the ratio
  to the baseline;
- CPU: this process's (the delivery service's every thread, and the benchmark's publishing and
  polling) from the first publish to the last delivery, per delivery: steadier than the rate on a
  loaded machine; the receiver's; and PostgreSQL's when it runs on this machine (the whole server,
  so anything else it serves meanwhile counts too);
- latency: for each delivery, from the event's commit (its CloudEvent `time`, stamped as it is
  published) to the receiver's 2xx (the attempt's start plus its latency): p50 / p99, in the burst
  (mostly the backlog's wait) and with `--paced` events sent one a second afterwards.

A namespace of its own on the machine's NATS (`bench<hex>`, streams deleted at the end); SQLite in a
temp dir or a fresh PostgreSQL database (created and dropped). Loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx
import nats
import uvloop
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from rich.console import Console
from sqlalchemy import func, literal_column, select
from sqlalchemy.engine import make_url

from cradle.layout import free_port
from cradle.migrations import upgrade
from cradle.nats import provision
from services.delivery.app import create_app
from services.delivery.config import DeliverySettings
from services.delivery.models import Delivery, DeliveryAttempt, EventRecord
from shared.contracts.registry import FacilitySubmitted, Places
from shared.events.envelope import CloudEvent
from shared.events.streams import Namespace
from shared.identity import IDENTITY_HEADER, ClientKind, Identity, IdentitySigner, generate_keypair

NATS_URL = os.environ.get("CRADLE_BENCH_NATS_URL", "nats://127.0.0.1:4222")
PG_ADMIN_URL = os.environ.get("CRADLE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
console = Console()
RAW_ROUNDS = 5

RECEIVER = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""


def facility_event(now: datetime) -> CloudEvent:
    facility_id = str(uuid.uuid4())
    facts = FacilitySubmitted(
        facility_id=facility_id,
        name="基准托育点",
        kind="community_point",
        inclusive=True,
        has_nursery_class=False,
        district_code="310104",
        town_code="310104003",
        status="submitted",
        capacity=Places(infant=10, toddler=15, preschool=20),
        enrolment=Places(infant=0, toddler=0, preschool=0),
        opening_hours=[],
        version=1,
        occurred_at=now,
    )
    return CloudEvent(
        source="/cradle/registry",
        type=FacilitySubmitted.event_type,
        subject=facility_id,
        data=facts.model_dump(mode="json"),
        time=now,
    )


async def raw_consume_rate(js: Any, stream: str, count: int) -> float:
    """Messages per second a plain pull consumer fetches and acks from the stream."""
    durable = f"bench-raw-{uuid.uuid4().hex[:6]}"
    await js.add_consumer(
        stream,
        config=ConsumerConfig(
            durable_name=durable, deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT
        ),
    )
    subscription = await js.pull_subscribe_bind(durable=durable, stream=stream)
    got = 0
    started = time.perf_counter()
    while got < count:
        messages = await subscription.fetch(256, timeout=5)
        for message in messages:
            await message.ack()
        got += len(messages)
    seconds = time.perf_counter() - started
    await subscription.unsubscribe()
    await js.delete_consumer(stream, durable)
    return got / seconds


async def database(backend: str, workdir: Path) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{workdir / 'delivery.db'}", None
    name = f"bench_delivery_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN_URL)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name).render_as_string(False)
    return url, name


async def drop_database(name: str | None) -> None:
    if name is None:
        return
    conn = await asyncpg.connect(PG_ADMIN_URL)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def run(events: int, subscribers: int, backend: str, paced: int) -> None:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    ns = Namespace(namespace)
    await provision(NATS_URL, namespace=namespace, replicas=1, credentials=None)
    private_pem, public_pem = generate_keypair()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="cradle-bench-delivery-"))
    (workdir / "receiver.py").write_text(RECEIVER)
    receiver = subprocess.Popen(  # noqa: ASYNC220 (started once, before anything is measured)
        [
            sys.executable,
            "-m",
            "uvicorn",
            "receiver:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--http",
            "httptools",
        ],
        cwd=workdir,
    )
    url, pg_name = await database(backend, workdir)
    nc = await nats.connect(NATS_URL)
    try:
        await asyncio.to_thread(upgrade, "delivery", url)
        settings = DeliverySettings(
            database_url=url,
            nats_url=NATS_URL,
            event_namespace=namespace,
            internal_verify_key=public_pem,
            allow_http_loopback=True,
            log_format="console",
            log_level="WARNING",
        )
        app = create_app(settings)
        gc.freeze()  # as the service's own process does once its app is built (cradle/serve.py)
        signer = IdentitySigner(private_pem)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://delivery"
            ) as client:
                for index in range(subscribers):
                    identity = Identity(
                        client_id=f"bureau-{index}",
                        kind=ClientKind.bureau,
                        bureau="EDU",
                        scopes=["registry:read", "events:subscribe"],
                    )
                    response = await client.post(
                        "/v1/subscriptions",
                        json={
                            "url": f"http://127.0.0.1:{port}/hook/{index}",
                            "event_types": ["cradle.registry.**"],
                        },
                        headers={IDENTITY_HEADER: signer.sign(identity)},
                    )
                    assert response.status_code == 201, response.text
            for _ in range(100):  # the receiver process is up
                with contextlib.suppress(httpx.TransportError):
                    async with httpx.AsyncClient() as probe:
                        await probe.post(f"http://127.0.0.1:{port}/")
                    break
                await asyncio.sleep(0.1)
            await asyncio.wait_for(_bound(app), 30)

            js = nc.jetstream()
            maker = app.state.sessionmaker
            expected = events * subscribers
            started = datetime.now(UTC)
            server = await postgres_server(url) if pg_name else None
            cpu_started = time.process_time()
            receiver_started = process_cpu(receiver.pid)
            server_started = postgres_cpu(server) if server else 0.0
            for _ in range(events):  # a burst: the backlog is what is measured
                await publish(js, ns)
            last = await delivered(maker, expected)
            cpu_seconds = time.process_time() - cpu_started
            receiver_seconds = process_cpu(receiver.pid) - receiver_started
            server_seconds = postgres_cpu(server) - server_started if server else None
            seconds = ((last or datetime.now(UTC)) - started).total_seconds()
            async with maker() as session:
                rows = (await session.execute(commit_to_2xx())).all()
                newest = select(func.max(EventRecord.recorded_at))
                last_recorded = (await session.execute(newest)).scalar_one()
            # Latency at a rate the sender keeps up with: one event a second, each to every subscriber.
            async with maker() as session:
                after = (await session.execute(select(func.max(EventRecord.seq)))).scalar_one()
            for _ in range(paced):
                await publish(js, ns)
                await asyncio.sleep(1.0)
            await delivered(maker, expected + paced * subscribers)
            async with maker() as session:
                paced_rows = (await session.execute(commit_to_2xx().where(EventRecord.seq > after))).all()
            async with maker() as session:
                failed = (
                    await session.execute(
                        select(func.count())
                        .select_from(DeliveryAttempt)
                        .where(DeliveryAttempt.outcome == "failed")
                    )
                ).scalar_one()
        latencies = milliseconds(rows)
        steady = milliseconds(paced_rows)
        # A few consumers in turn, the median: one fetch of a few hundred messages lasts tens of
        # milliseconds, and a single one swung from 1 k to 24 k msgs/s between runs on a busy machine.
        raw = [
            await raw_consume_rate(nc.jetstream(), ns.stream("registry"), events) for _ in range(RAW_ROUNDS)
        ]
        baseline = statistics.median(raw)
        rate = len(rows) / seconds
        console.print(
            f"backend {backend}, {events} events x {subscribers} subscribers = {expected} deliveries"
        )
        console.print(
            f"raw JetStream consume (fetch 256 + ack), same stream:  {baseline:10,.0f} msgs/s"
            f"  (median of {', '.join(f'{r:,.0f}' for r in raw)})"
        )
        console.print(
            f"delivered (2xx recorded), first publish to last:       {rate:10,.0f} deliveries/s"
            f"  ({len(rows):,} in {seconds:.1f} s, {failed} failed attempts)"
        )
        console.print(
            f"the burst's events all recorded (the consumer) after: "
            f"{(_utc(last_recorded) - started).total_seconds():10.1f} s"
        )
        console.print(
            f"this process's CPU in the burst (every thread):       {cpu_seconds:10.2f} s"
            f"  ({cpu_seconds / max(len(rows), 1) * 1e6:,.0f} µs a delivery,"
            f" {cpu_seconds / seconds:.0%} of a core)"
        )
        console.print(
            f"the receiver's CPU in the burst (its own process):    {receiver_seconds:10.2f} s"
            f"  ({receiver_seconds / max(len(rows), 1) * 1e6:,.0f} µs a delivery)"
        )
        if server_seconds is not None:
            console.print(
                f"PostgreSQL's CPU in the burst (the whole server):    {server_seconds:10.2f} s"
                f"  ({server_seconds / max(len(rows), 1) * 1e6:,.0f} µs a delivery)"
            )
        console.print(
            f"ratio deliveries/s : msgs/s                            {rate / baseline:10.2f}x  (goal ≥ 0.3x)"
        )
        console.print(
            f"commit → receiver's 2xx in the burst: p50 {_pct(latencies, 50):,.0f} ms, "
            f"p99 {_pct(latencies, 99):,.0f} ms (the backlog's wait)"
        )
        console.print(
            f"commit → receiver's 2xx at 1 event/s ({len(steady)} deliveries): "
            f"p50 {_pct(steady, 50):,.0f} ms, p99 {_pct(steady, 99):,.0f} ms"
        )
        console.print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        receiver.terminate()
        with contextlib.suppress(Exception):
            receiver.wait(10)
        js = nc.jetstream()
        for info in await js.streams_info():
            if info.config.name and info.config.name.startswith(namespace.upper()):
                await js.delete_stream(info.config.name)
        await nc.close()
        await drop_database(pg_name)


async def publish(js: Any, ns: Namespace) -> None:
    """As the registry's outbox relay publishes a committed event (its `time` stamped now)."""
    event = facility_event(datetime.now(UTC))
    await js.publish(
        ns.subject(event.type),
        event.model_dump_json(exclude_none=True).encode(),
        headers={"Nats-Msg-Id": event.id},
    )


async def delivered(maker: Any, expected: int) -> datetime | None:
    """Until `expected` deliveries are recorded delivered (at most 10 minutes); when the last was.
    Looked at four times a second, by two counts the indexes answer (the pending-only index and the
    smallest one), so the benchmark's own polling takes little from the process it measures; the end
    is read from the rows, so the poll's period does not count."""
    for _ in range(2_400):
        async with maker() as session:
            pending, owed = (
                await session.execute(
                    select(
                        select(func.count())
                        .select_from(Delivery)
                        .where(Delivery.status == literal_column("'pending'"))
                        .scalar_subquery(),
                        select(func.count()).select_from(Delivery).scalar_subquery(),
                    )
                )
            ).one()
            if owed >= expected and pending == 0:
                done, last = (
                    await session.execute(
                        select(func.count(), func.max(Delivery.delivered_at)).where(
                            Delivery.status == "delivered"
                        )
                    )
                ).one()
                if done >= expected:
                    return _utc(last)
        await asyncio.sleep(0.25)
    return None


def commit_to_2xx() -> Any:
    return (
        select(EventRecord.time, DeliveryAttempt.attempted_at, DeliveryAttempt.latency_ms)
        .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
        .join(EventRecord, EventRecord.seq == Delivery.event_seq)
        .where(DeliveryAttempt.outcome == "delivered")
    )


def milliseconds(rows: Any) -> list[float]:
    return sorted(
        ((_utc(attempted) + timedelta(milliseconds=ms)) - _utc(committed)).total_seconds() * 1000
        for committed, attempted, ms in rows
    )


async def _bound(app: Any) -> None:
    """The delivery service is on the bus (its consumers bind as it connects)."""
    for _ in range(600):
        if app.state.bus.connected:
            return
        await asyncio.sleep(0.05)


def process_cpu(pid: int) -> float:
    """Another process's CPU time so far, user and system, in seconds (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def postgres_server(url: str) -> int | None:
    """The PostgreSQL server's main process (the parent of this connection's backend), when it runs
    on this machine; else None."""
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    try:  # read while the backend runs: it ends with the connection
        return parent_of(await conn.fetchval("SELECT pg_backend_pid()"))
    finally:
        await conn.close()


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):  # not a process of this machine
        return None


def postgres_cpu(server: int) -> float:
    """The whole server's CPU so far, in seconds: its main process's own and its ended children's
    (reaped into it), and each running child's (backends, WAL writer, checkpointer...)."""
    fields = Path(f"/proc/{server}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            child = stat.read_text().rsplit(")", 1)[1].split()
            if int(child[1]) == server:
                ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _pct(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]
        if len(values) > 1
        else values[0]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--paced", type=int, default=20, help="events sent one a second for the latency")
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="the event loop: uvloop is what `cradle up` serves the delivery service on (uvicorn's choice)",
    )
    args = parser.parse_args()
    bench = run(args.events, args.subscribers, args.backend, args.paced)
    if args.loop == "uvloop":
        uvloop.run(bench)
    else:
        asyncio.run(bench)


if __name__ == "__main__":
    main()
