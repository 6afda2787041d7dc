"""CCTV ingest benchmark: events per second accepted through the gateway in batches of 500, next to
a plain nats-py JetStream publish loop of the same messages (the ceiling), in the same run.

    .venv/bin/python bench/ingest.py [--events 200000] [--batch 500] [--concurrency 4] [--cameras 20000]
                                     [--backend sqlite|postgres] [--rounds 2] [--prefill 1000000]

What it does, on loopback, in a temporary directory:

1. migrates the monitoring and gateway databases (SQLite files, or a fresh PostgreSQL database for
   monitoring with --backend postgres) and writes a city's worth of approved facilities (one per 10
   cameras) and `--cameras` cameras into monitoring's tables with Core executemany;
2. starts a nats-server of its own and provisions the run's streams on it, then the monitoring
   service and the gateway as uvicorn subprocesses (one worker each, as `cradle up` runs them, with
   keys made for the run: bench/stack.py), rate limits raised so the limiter never refuses the load;
3. ceiling: publishes every event of the run, one JSON message each with `Nats-Msg-Id` = event id,
   with `js.publish_async` and all acks awaited (500 in flight at a time), to a stream of the
   benchmark's own on the same server;
4. gateway: POSTs the same events as batches of `--batch` to `/v1/cctv-events` through the gateway
   with a video platform's bearer token, `--concurrency` batches in flight; every reply is checked
   (all accepted, none rejected), and the stored row count is checked at the end;
5. rounds alternate ceiling / gateway with fresh event ids (random uuid4s, or `--event-ids ordered`:
   UUIDv7s, time-ordered as the API asks senders to make them); prints the best of each and the ratio;
6. with `--prefill N`: N more stored events written straight into monitoring's table (Core
   executemany, spread over the cameras and the retention period), then the same rounds again: each
   round's gateway / ceiling ratio before and after, so a decline as the table grows shows in one run.

Events are 98 % heartbeats and motion, 2 % `prolonged_crying` (which alerts, folded per camera), on
random cameras, stamped now. Bodies are serialized before the clock starts, so the load generator's
JSON work is not counted against either path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx
import nats
from nats.js.api import StreamConfig
from sqlalchemy import insert

from bench.stack import (
    ADMIN_SECRET,
    bench_keys,
    ensure_admin,
    gateway_env,
    namespace,
    processes,
    provision_streams,
    service_env,
    start_nats,
    uvicorn,
    wait_healthy,
    workdir,
)
from cradle.layout import Keys, free_port
from cradle.migrations import upgrade
from services.monitoring.models import Camera, Facility
from shared.db import make_engine
from shared.identity import IDENTITY_HEADER, ClientKind, Identity, IdentitySigner

PG_ADMIN = os.environ.get("CRADLE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ALWAYS_OPEN = [{"days": [1, 2, 3, 4, 5, 6, 7], "opens": "00:00", "closes": "23:59"}]


async def seed(url: str, cameras: int) -> list[tuple[str, str]]:
    """Facilities and cameras straight into monitoring's tables; returns (camera_id, facility_id)."""
    engine = make_engine(url)
    now = datetime.now(UTC)
    facilities = [
        {
            "id": str(uuid.uuid4()),
            "name": f"托育机构 {n}",
            "kind": "community_point",
            "district_code": "310104",
            "town_code": "310104003",
            "status": "approved",
            "owner_client_id": None,
            "opening_hours": ALWAYS_OPEN,
            "enrolled": 0,
            "staffing_in_ratio": None,
            "staffing_shortfall": 0,
            "version": 1,
            "source_event_at": now,
            "updated_at": now,
        }
        for n in range(max(1, cameras // 10))
    ]
    rows = [
        {
            "id": str(uuid.uuid4()),
            "facility_id": facilities[n % len(facilities)]["id"],
            "location": "classroom",
            "vendor": "bench",
            "external_id": f"cam-{n}",
            "label": None,
            "active": True,
            "registered_by": "bench",
            "registered_at": now,
            "last_seen_at": None,
            "last_event_type": None,
            "version": 1,
        }
        for n in range(cameras)
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(Facility.__table__), facilities)
        for start in range(0, len(rows), 10_000):
            await connection.execute(insert(Camera.__table__), rows[start : start + 10_000])
    await engine.dispose()
    return [(r["id"], r["facility_id"]) for r in rows]


def uuid7(at: datetime | None = None) -> str:
    """A UUIDv7 (RFC 9562) as time-ordered senders make them: 48 bits of Unix milliseconds (now, or
    `at`), the version, randomness and the variant."""
    ms = int((at.timestamp() if at else time.time()) * 1000)
    return str(
        uuid.UUID(
            int=(ms << 80)
            | (0x7 << 76)
            | (random.getrandbits(12) << 64)
            | (0b10 << 62)
            | random.getrandbits(62)
        )
    )


# A sender's ids, made at `at` (the prefill's past events) or now.
EVENT_IDS = {"random": lambda at=None: str(uuid.uuid4()), "ordered": uuid7}


def make_events(
    cameras: list[tuple[str, str]], n: int, rng: random.Random, ids: str = "random"
) -> list[dict[str, object]]:
    new_event_id = EVENT_IDS[ids]
    now = datetime.now(UTC).isoformat()
    events = []
    for _ in range(n):
        camera_id, facility_id = cameras[rng.randrange(len(cameras))]
        roll = rng.random()
        kind = "heartbeat" if roll < 0.78 else "motion" if roll < 0.98 else "prolonged_crying"
        events.append(
            {
                "event_id": new_event_id(),
                "camera_id": camera_id,
                "facility_id": facility_id,
                "type": kind,
                "occurred_at": now,
                "payload": {"fw": "5.7.3"} if kind == "heartbeat" else {"zone": "A", "score": 0.8},
            }
        )
    return events


async def prefill(
    url: str, cameras: list[tuple[str, str]], count: int, rng: random.Random, ids: str = "random"
) -> float:
    """`count` stored events straight into the table, as weeks of a city's traffic would leave them
    (received over the last 25 days). Returns the rows written per second."""
    from services.monitoring.models import CctvEvent
    from services.monitoring.service.ingest import dedup_key, id_ms

    engine = make_engine(url)
    now = datetime.now(UTC)
    started = time.perf_counter()
    try:
        for offset in range(0, count, 20_000):
            rows = []
            for _ in range(min(20_000, count - offset)):
                camera_id, facility_id = cameras[rng.randrange(len(cameras))]
                at = now - timedelta(seconds=rng.randrange(25 * 86_400))
                event_id = EVENT_IDS[ids](at)
                rows.append(
                    {
                        "id_ms": id_ms(event_id),
                        "dedup_key": dedup_key(facility_id, event_id),
                        "event_id": event_id,
                        "camera_id": camera_id,
                        "facility_id": facility_id,
                        "type": "heartbeat",
                        "occurred_at": at,
                        "received_at": at,
                        "payload": {"fw": "5.7.3"},
                    }
                )
            async with engine.begin() as connection:
                await connection.execute(insert(CctvEvent.__table__), rows)
    finally:
        await engine.dispose()
    return count / (time.perf_counter() - started)


async def ceiling(nats_url: str, subject: str, events: list[dict[str, object]]) -> float:
    messages = [(json.dumps(e).encode(), str(e["event_id"])) for e in events]
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        start = time.perf_counter()
        for offset in range(0, len(messages), 500):
            futures = [
                await js.publish_async(subject, body, headers={"Nats-Msg-Id": msg_id})
                for body, msg_id in messages[offset : offset + 500]
            ]
            acks = await asyncio.wait_for(asyncio.gather(*futures), timeout=60)
            if any(a.duplicate for a in acks):
                raise RuntimeError("ceiling: unexpected duplicate acks")
        return len(messages) / (time.perf_counter() - start)
    finally:
        await nc.close()


async def post_batches(
    url: str, bearer: dict[str, str], events: list[dict[str, object]], batch: int, concurrency: int
) -> tuple[float, list[float]]:
    bodies = [json.dumps(events[i : i + batch]).encode() for i in range(0, len(events), batch)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    headers = {**bearer, "content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def sender() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                sent = time.perf_counter()
                response = await client.post("/v1/cctv-events", content=body, headers=headers)
                latencies.append((time.perf_counter() - sent) * 1000)
                reply = response.json()
                if response.status_code != 200 or reply["rejected"] or reply["duplicates"]:
                    raise RuntimeError(f"{response.status_code}: {response.text[:300]}")

        start = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return len(events) / elapsed, latencies


async def main(args: argparse.Namespace) -> None:
    with workdir("cradle-bench-ingest-") as work:
        await prepare(args, work)


async def prepare(args: argparse.Namespace, work: Path) -> None:
    keys = bench_keys()
    pg_database = None
    if args.backend == "postgres":
        pg_database = f"bench_ingest_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{pg_database}"')
        await admin.close()
        base = PG_ADMIN.rsplit("/", 1)[0]
        monitoring_db = f"postgresql+asyncpg://{base.split('://', 1)[1]}/{pg_database}"
    else:
        monitoring_db = f"sqlite+aiosqlite:///{work / 'monitoring.db'}"
    gateway_db = f"sqlite+aiosqlite:///{work / 'gateway.db'}"
    print(f"workdir {work}; monitoring on {args.backend}")
    try:
        await asyncio.to_thread(upgrade, "monitoring", monitoring_db)
        await asyncio.to_thread(upgrade, "gateway", gateway_db)
        cameras = await seed(monitoring_db, args.cameras)
        await ensure_admin(gateway_db)
        await run(args, work, keys, monitoring_db, gateway_db, cameras)
    finally:
        if pg_database:
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{pg_database}" WITH (FORCE)')
            await admin.close()


async def run(
    args: argparse.Namespace,
    work: Path,
    keys: Keys,
    monitoring_db: str,
    gateway_db: str,
    cameras: list[tuple[str, str]],
) -> None:
    monitoring_port, gateway_port = free_port(), free_port()
    ns = namespace("benchingest")
    unlimited = {"rate": 1_000_000, "burst": 10_000_000}
    upstreams = {"monitoring": f"http://127.0.0.1:{monitoring_port}"}
    rng = random.Random(2026)
    with processes() as started:
        nats_url = await start_nats(work, started)
        await provision_streams(nats_url, ns)  # as `cradle up` does before the services start
        monitoring_env = service_env(
            "monitoring", database_url=monitoring_db, keys=keys, nats_url=nats_url, ns=ns
        ) | {"MONITORING_JOBS_INTERVAL_SECONDS": "0"}
        gw_env = gateway_env(
            keys=keys,
            upstreams=upstreams,
            database_url=gateway_db,
            nats_url=nats_url,
            ns=ns,
            rate_limits={"bureau": unlimited, "admin": unlimited},
        )
        started.append(
            uvicorn("services.monitoring.app:create_app", monitoring_port, monitoring_env, work / "mon.log")
        )
        started.append(uvicorn("gateway.app:create_app", gateway_port, gw_env, work / "gw.log"))
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        await wait_healthy(upstreams["monitoring"], started[1], log=work / "mon.log")
        await wait_healthy(gateway_url, started[2], log=work / "gw.log", degraded_ok=True)
        bearer = await video_platform_token(gateway_url)

        nc = await nats.connect(nats_url)
        await nc.jetstream().add_stream(StreamConfig(name="BENCH_CEILING", subjects=["benchceiling.>"]))
        await nc.close()

        print(
            f"{args.cameras:,} cameras; {args.events:,} events per path per round; batches of {args.batch}, "
            f"{args.concurrency} in flight"
        )
        ceilings, gateways, all_latencies = [], [], []
        # Unmeasured warm-up: imports, connection pools, the camera cache.
        await post_batches(gateway_url, bearer, make_events(cameras, args.batch * 4, rng), args.batch, 2)
        signer = IdentitySigner(keys.internal_signing_key)
        platform = Identity(
            client_id="bench-platform", kind=ClientKind.bureau, bureau="EDU", scopes=["monitoring:ingest"]
        )
        directs = []
        ratios: dict[str, list[float]] = {"before": [], "after": []}
        phases = ["before", "after"] if args.prefill else ["before"]
        for phase in phases:
            if phase == "after":
                held = await stored_events(monitoring_db)
                rate = await prefill(monitoring_db, cameras, args.prefill, rng, args.event_ids)
                print(
                    f"prefilled {args.prefill:,} events at {rate:,.0f} rows/s: {held + args.prefill:,} stored"
                )
            for round_no in range(1, args.rounds + 1):
                events = make_events(cameras, args.events, rng, args.event_ids)
                ceilings.append(await ceiling(nats_url, "benchceiling.cctv", events))
                rate, latencies = await post_batches(
                    gateway_url, bearer, events, args.batch, args.concurrency
                )
                gateways.append(rate)
                ratios[phase].append(rate / ceilings[-1])
                all_latencies += latencies
                direct_events = make_events(cameras, args.events, rng, args.event_ids)
                signed = {IDENTITY_HEADER: signer.sign(platform)}  # lives 60 s: one round's worth
                direct, _ = await post_batches(
                    upstreams["monitoring"], signed, direct_events, args.batch, args.concurrency
                )
                directs.append(direct)
                print(
                    f"round {round_no}{' (after the prefill)' if phase == 'after' else ''}: "
                    f"ceiling {ceilings[-1]:9,.0f} ev/s   gateway {rate:9,.0f} ev/s "
                    f"({ratios[phase][-1]:.2f}x)   direct to monitoring {direct:9,.0f} ev/s"
                )
        stored = await stored_events(monitoring_db)
        expected = 2 * args.events * args.rounds * len(phases) + args.batch * 4 + args.prefill
        if stored != expected:
            raise SystemExit(f"stored {stored:,} events, expected {expected:,}")

    all_latencies.sort()
    best_ceiling, best_gateway = max(ceilings), max(gateways)
    print()
    print(f"ceiling (nats-py JetStream publish_async, 500 acks in flight): {best_ceiling:9,.0f} events/s")
    print(
        f"through the gateway (POST /v1/cctv-events, {args.batch}/batch):     {best_gateway:9,.0f} events/s "
        f"batch p50 {all_latencies[len(all_latencies) // 2]:.0f} ms, "
        f"p99 {all_latencies[int(len(all_latencies) * 0.99)]:.0f} ms"
    )
    print(f"straight to monitoring (signed identity, no gateway):         {max(directs):9,.0f} events/s")
    print(
        f"ratio gateway / ceiling: {best_gateway / best_ceiling:.2f}x (stored and checked: {stored:,} events)"
    )
    if args.prefill:
        before, after = max(ratios["before"]), max(ratios["after"])
        print(
            f"with {args.prefill:,} more stored: best round {after:.2f}x of its ceiling, "
            f"against {before:.2f}x before ({after / before:.2f} of it)"
        )


async def video_platform_token(gateway_url: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=gateway_url) as client:

        async def token(client_id: str, secret: str) -> str:
            form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
            return (await client.post("/v1/auth/token", data=form)).raise_for_status().json()["access_token"]

        admin = {"Authorization": f"Bearer {await token('admin', ADMIN_SECRET)}"}
        body = {
            "name": "市视频监控平台 (bench)",
            "kind": "bureau",
            "bureau": "EDU",
            "scopes": ["monitoring:ingest"],
        }
        created = (await client.post("/v1/admin/clients", json=body, headers=admin)).raise_for_status().json()
        return {"Authorization": f"Bearer {await token(created['client_id'], created['client_secret'])}"}


async def stored_events(url: str) -> int:
    from sqlalchemy import func, select

    from services.monitoring.models import CctvEvent
    from shared.db import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(select(func.count()).select_from(CctvEvent))).scalar_one()
    finally:
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--cameras", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--event-ids",
        choices=sorted(EVENT_IDS),
        default="random",
        help="the senders' event ids: random (uuid4, the worst case for the dedup index) or time-ordered",
    )
    parser.add_argument(
        "--prefill",
        type=int,
        default=1_000_000,
        help="stored events added before the second set of rounds (0: none)",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
