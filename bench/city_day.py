"""A compressed city day against `cradle up --replicas 2` on PostgreSQL, then proof that nothing was
lost or written twice.

The stack is the real one, started as an operator starts it: `cradle seed-demo` fills fresh
PostgreSQL databases (facilities, practitioners, cameras), then `cradle up --replicas 2` runs two
processes of every service and two gateways, each gateway balancing over both replicas, on an
embedded three-node JetStream cluster whose streams keep three copies. One load generator
alternates its requests between the two gateways:

  cameras' heartbeats (and a few events) in batches · the parents' app searching facilities near a
  point · operators registering practitioners and hiring them · a dozen bans · ban checks · lists
  exported as CSV

Afterwards, through the API and the databases: every 2xx write is there exactly once (read back
through the gateways, counted in the databases), every outbox is empty, every durable consumer has
nothing pending and its inbox holds each event of the types it handles once (against the
producers' outboxes), and the audit chain verifies (`cradle audit verify`, with its checkpoint).

Defaults (20,000 cameras, three heartbeats each) take a few minutes on a 2-core machine, most of
them starting and seeding the stack; `--cameras 2000 --heartbeats 1` is a quick run. Needs
PostgreSQL at CRADLE_BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres).

    .venv/bin/python bench/city_day.py [--cameras N] [--heartbeats N] [--searches N] [--hires N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cradle.layout import free_port  # noqa: E402
from cradle.nats import ADMIN  # noqa: E402
from cradle.services import PROCESSES  # noqa: E402
from shared.pii import national_id_check_char  # noqa: E402

PG_URL = os.environ.get("CRADLE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CRADLE = Path(sys.executable).parent / "cradle"
ADMIN_SECRET = "city-day-admin-" + uuid.uuid4().hex
# The load generator is one caller per kind: the rate limits are set out of its way.
OPEN_LIMITS = {
    kind: {"rate": 1_000_000, "burst": 1_000_000} for kind in ("bureau", "operator", "admin", "public")
}
BATCH = 500  # camera events per ingest request


@dataclass
class Timings:
    """Latencies and statuses per path label, for the rate and p99 table."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    spans: dict[str, list[float]] = field(default_factory=dict)  # label → [first start, last end]

    def record(self, label: str, started: float, status: int) -> None:
        ended = time.perf_counter()
        self.seconds[label].append(ended - started)
        self.statuses[label].append(status)
        span = self.spans.setdefault(label, [started, ended])
        span[0], span[1] = min(span[0], started), max(span[1], ended)


class Load:
    """HTTP through the two gateways in turn."""

    def __init__(self, gateways: list[str], timings: Timings, concurrency: int) -> None:
        self.clients = [httpx.AsyncClient(base_url=g, timeout=120) for g in gateways]
        self.turn = itertools.cycle(range(len(gateways)))
        self.timings = timings
        self.slots = asyncio.Semaphore(concurrency)
        self.tokens: dict[tuple[str, int], str] = {}
        self.secrets: dict[str, str] = {}

    async def token(self, client_id: str, index: int) -> str:
        key = (client_id, index)
        if key not in self.tokens:
            form = {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": self.secrets[client_id],
            }
            reply = await self.clients[index].post("/v1/auth/token", data=form)
            reply.raise_for_status()
            self.tokens[key] = reply.json()["access_token"]
        return self.tokens[key]

    async def call(
        self, label: str, method: str, path: str, *, client_id: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        index = next(self.turn)
        headers = dict(kwargs.pop("headers", {}))
        if client_id is not None:
            headers["Authorization"] = f"Bearer {await self.token(client_id, index)}"
        async with self.slots:
            started = time.perf_counter()
            reply = await self.clients[index].request(method, path, headers=headers, **kwargs)
            self.timings.record(label, started, reply.status_code)
        return reply

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


def id_number(rng: random.Random) -> str:
    born = date(1975, 1, 1).toordinal() + rng.randrange(25 * 365)
    first17 = "310104" + date.fromordinal(born).strftime("%Y%m%d") + f"{rng.randrange(1000):03d}"
    return first17 + national_id_check_char(first17)


def pg(database: str) -> str:
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


async def pg_admin(statements: list[str]) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def with_table(dbs: dict[str, str], table: str) -> dict[str, str]:
    """The databases that have this table (the gateway has neither outbox nor inbox)."""
    found = {}
    for name, database in dbs.items():
        if (await rows(database, "SELECT to_regclass($1) IS NOT NULL AS present", table))[0]["present"]:
            found[name] = database
    return found


async def rows(database: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(pg(database))
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


# ------------------------------------------------------------------------------------------ the day


async def city_day(load: Load, args: argparse.Namespace, tag: str, dbs: dict[str, str]) -> dict[str, Any]:
    rng = random.Random(2026)
    admin = "admin"
    load.secrets[admin] = ADMIN_SECRET
    approved = [
        r["id"]
        for r in await rows(
            dbs["registry"], "SELECT id FROM facility WHERE status = 'approved' ORDER BY id LIMIT 40"
        )
    ]
    cameras = [
        (r["id"], r["facility_id"])
        for r in await rows(dbs["monitoring"], "SELECT id, facility_id FROM camera WHERE active ORDER BY id")
    ]
    towns = [
        (float(r["lat"]), float(r["lon"]))
        for r in await rows(dbs["registry"], "SELECT lat, lon FROM facility ORDER BY id LIMIT 200")
    ]

    async def client(name: str, body: dict[str, Any]) -> str:
        reply = await load.call("setup", "POST", "/v1/admin/clients", client_id=admin, json=body)
        reply.raise_for_status()
        created = reply.json()
        load.secrets[created["client_id"]] = created["client_secret"]
        return str(created["client_id"])

    city = await client(
        "city",
        {
            "name": "上海市教育委员会",
            "kind": "bureau",
            "bureau": "EDU",
            "scopes": ["registry:read", "workforce:read", "workforce:ban", "monitoring:read"],
        },
    )
    devices = await client(
        "devices",
        {"name": "视频平台", "kind": "bureau", "bureau": "EDU", "scopes": ["monitoring:ingest"]},
    )
    operator = await client(
        "operator",
        {
            "name": "城区托育集团",
            "kind": "operator",
            "facility_ids": approved,
            "scopes": ["registry:read", "workforce:read", "workforce:write"],
        },
    )
    for client_id in (city, devices, operator):  # signed in before the day, once per gateway
        for index in range(len(load.clients)):
            await load.token(client_id, index)
    written: dict[str, list[str]] = defaultdict(list)
    event_ids: list[str] = []

    async def heartbeats(round_: int) -> None:
        for start in range(0, len(cameras), BATCH):
            batch = []
            for camera_id, facility_id in cameras[start : start + BATCH]:
                kind = "heartbeat" if rng.random() > 0.002 else "motion"
                event_id = f"cd-{tag}-{round_}-{camera_id}"
                batch.append(
                    {
                        "event_id": event_id,
                        "camera_id": camera_id,
                        "facility_id": facility_id,
                        "type": kind,
                        "occurred_at": datetime.now(UTC).isoformat(),
                        "payload": {},
                    }
                )
            reply = await load.call(
                "POST /v1/cctv-events", "POST", "/v1/cctv-events", client_id=devices, json=batch
            )
            if reply.status_code == 200:
                accepted = reply.json()
                rejected = {item["index"] for item in accepted.get("rejected", [])}
                event_ids.extend(e["event_id"] for i, e in enumerate(batch) if i not in rejected)

    async def search() -> None:
        lat, lon = rng.choice(towns)
        await load.call(
            "GET /v1/public/facilities?near",
            "GET",
            "/v1/public/facilities",
            params={"near": f"{lat:.4f},{lon:.4f}", "radius_m": 3000, "limit": 20},
        )

    async def hire() -> None:
        number = id_number(rng)
        registered = await load.call(
            "POST /v1/practitioners",
            "POST",
            "/v1/practitioners",
            client_id=operator,
            json={"id_number": number, "name": f"城日{rng.randrange(10**6)}"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        if registered.status_code != 201:
            return
        practitioner = registered.json()["id"]
        written["practitioners"].append(practitioner)
        # A hire needs a health certificate valid on its first day (健康合格证明).
        await load.call(
            "POST /v1/practitioners/{id}/certificates",
            "POST",
            f"/v1/practitioners/{practitioner}/certificates",
            client_id=operator,
            json={
                "type": "health",
                "number": f"H-{uuid.uuid4().hex[:10]}",
                "issuer": "上海市疾病预防控制中心",
                "issued_on": (date.today() - timedelta(days=30)).isoformat(),
                "expires_on": (date.today() + timedelta(days=330)).isoformat(),
            },
        )
        hired = await load.call(
            "POST /v1/employments",
            "POST",
            "/v1/employments",
            client_id=operator,
            json={
                "practitioner_id": practitioner,
                "facility_id": rng.choice(approved),
                "role": "other",  # no certificate needed: the hire waits only for its background check
                "start_date": date.today().isoformat(),
            },
        )
        if hired.status_code == 201:
            written["employments"].append(hired.json()["id"])
        written["id_numbers"].append(number)

    async def ban(number: str, index: int) -> None:
        reply = await load.call(
            "POST /v1/bans",
            "POST",
            "/v1/bans",
            client_id=city,
            json={
                "id_number": number,
                "name": "城日",
                "reason": "虐待幼儿，情节严重",
                "decision_ref": f"沪教托〔2026〕{tag}-{index}号",
                "role": "abuser",
            },
        )
        if reply.status_code == 201:
            written["bans"].append(reply.json()["id"])

    async def ban_check(number: str) -> None:
        await load.call(
            "POST /v1/ban-checks", "POST", "/v1/ban-checks", client_id=city, json={"id_number": number}
        )

    async def export() -> None:
        await load.call(
            "GET /v1/facilities (CSV)",
            "GET",
            "/v1/facilities",
            client_id=city,
            headers={"Accept": "text/csv"},
            params={"district_code": "310104"},
        )

    started = time.perf_counter()
    await asyncio.gather(
        *(heartbeats(r) for r in range(args.heartbeats)),
        *(search() for _ in range(args.searches)),
        *(hire() for _ in range(args.hires)),
        *(export() for _ in range(args.exports)),
    )
    numbers = written["id_numbers"]
    await asyncio.gather(
        *(ban(number, i) for i, number in enumerate(numbers[: args.bans])),
        *(ban_check(rng.choice(numbers) if numbers else id_number(rng)) for _ in range(args.ban_checks)),
    )
    return {
        "seconds": time.perf_counter() - started,
        "written": written,
        "event_ids": event_ids,
        "clients": {"city": city, "operator": operator},
    }


# -------------------------------------------------------------------------------------- the proof


async def eventually(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result is True or time.monotonic() > deadline:
            return result
        await asyncio.sleep(1)


async def prove(
    load: Load, day: dict[str, Any], dbs: dict[str, str], nats_url: str, creds: Path, tag: str
) -> list[tuple[str, bool, str]]:
    verdicts: list[tuple[str, bool, str]] = []
    written = day["written"]
    city, operator = day["clients"]["city"], day["clients"]["operator"]

    # Every 2xx write is there, once: read back through the gateways, counted in the databases.
    for kind, path, who in (
        ("practitioners", "/v1/practitioners/{}", operator),
        ("employments", "/v1/employments/{}", operator),
        ("bans", "/v1/bans/{}", city),
    ):
        ids = written[kind]
        found = [await load.call("verify", "GET", path.format(i), client_id=who) for i in ids]
        missing = sum(1 for reply in found if reply.status_code != 200)
        table = {"practitioners": "practitioner", "employments": "employment", "bans": "ban"}[kind]
        counted = await rows(
            dbs["workforce"], f"SELECT id, count(*) AS n FROM {table} WHERE id = ANY($1) GROUP BY id", ids
        )
        twice = sum(1 for r in counted if r["n"] != 1)
        verdicts.append(
            (
                f"{kind}: {len(ids)} written, read back",
                missing == 0 and twice == 0 and len(counted) == len(ids),
                f"{missing} missing, {twice} twice",
            )
        )
    stored = await rows(
        dbs["monitoring"],
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM cctv_event WHERE event_id LIKE $1",
        f"cd-{tag}-%",
    )
    accepted = len(day["event_ids"])
    verdicts.append(
        (
            f"camera events: {accepted:,} accepted, stored once",
            stored[0]["n"] == accepted == stored[0]["d"],
            f"{stored[0]['n']:,} rows, {stored[0]['d']:,} distinct",
        )
    )

    # Every outbox empty (the relays published everything, once acknowledged).
    async def outboxes_empty() -> Any:
        waiting = {}
        for name, database in (await with_table(dbs, "outbox")).items():
            found = await rows(database, "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL")
            if found and found[0]["n"]:
                waiting[name] = found[0]["n"]
        return True if not waiting else waiting

    empty = await eventually(outboxes_empty, 120)
    verdicts.append(("every outbox empty", empty is True, "" if empty is True else str(empty)))

    # Every durable consumer done, and each event of the types it handles in its inbox once.
    nc = await nats.connect(nats_url.split(","), user_credentials=str(creds))
    js = nc.jsm()
    try:

        async def consumers_idle() -> Any:
            busy = {}
            for stream in await js.streams_info():
                for consumer in await js.consumers_info(stream.config.name):
                    if consumer.num_pending or consumer.num_ack_pending:
                        busy[f"{stream.config.name}/{consumer.name}"] = (
                            consumer.num_pending,
                            consumer.num_ack_pending,
                        )
            return True if not busy else busy

        idle = await eventually(consumers_idle, 120)
        verdicts.append(("every durable consumer caught up", idle is True, "" if idle is True else str(idle)))
        produced: dict[str, dict[str, str]] = {}  # producer → event id → type
        for name, database in (await with_table(dbs, "outbox")).items():
            found = await rows(database, "SELECT event_id, payload FROM outbox")
            produced[name] = {r["event_id"]: json.loads(r["payload"])["type"] for r in found}
        for consumer_service, database in (await with_table(dbs, "inbox")).items():
            inbox = await rows(database, "SELECT consumer, event_id, event_type FROM inbox")
            by_consumer: dict[str, list[asyncpg.Record]] = defaultdict(list)
            for r in inbox:
                by_consumer[r["consumer"]].append(r)
            for consumer, received in by_consumer.items():
                ids = [r["event_id"] for r in received]
                handled_types = {r["event_type"] for r in received}
                expected = {
                    event_id
                    for events in produced.values()
                    for event_id, type_ in events.items()
                    if type_ in handled_types
                }
                from_outboxes = {i for i in ids if any(i in events for events in produced.values())}
                lost = expected - set(ids)
                twice = len(ids) - len(set(ids))
                verdicts.append(
                    (
                        f"{consumer_service}/{consumer}: "
                        f"{len(from_outboxes):,} of {len(expected):,} events, once",
                        not lost and twice == 0,
                        f"{len(lost)} lost, {twice} twice",
                    )
                )
    finally:
        await nc.close()
    return verdicts


def audit_verify(env: dict[str, str], nats_url: str, creds: Path) -> tuple[bool, str]:
    result = subprocess.run(
        [str(CRADLE), "audit", "verify"],
        env=env | {"NATS_URL": nats_url, "NATS_CREDS": str(creds)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    said = " ".join((result.stdout + result.stderr).split())[-300:]
    return result.returncode == 0, said


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cameras", type=int, default=20_000)
    parser.add_argument("--heartbeats", type=int, default=3, help="heartbeats per camera")
    parser.add_argument("--searches", type=int, default=2_000)
    parser.add_argument("--hires", type=int, default=200)
    parser.add_argument("--bans", type=int, default=12)
    parser.add_argument("--ban-checks", type=int, default=1_000)
    parser.add_argument("--exports", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    dbs = {name: f"cityday_{tag}_{name}" for name in PROCESSES}
    await pg_admin([f'CREATE DATABASE "{database}"' for database in dbs.values()])
    work = Path(tempfile.mkdtemp(prefix="cityday-"))
    port = free_port()
    while free_port() == port + 1:
        port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_DATABASE_URL") and k not in ("NATS_URL", "NATS_CREDS", "NATS_ADMIN_CREDS")
    } | {
        "PYTHONPATH": str(ROOT),  # this checkout's code, whatever the venv's editable install points at
        "CRADLE_DATA_DIR": str(work / "data"),
        "CRADLE_GATEWAY_PORT": str(port),
        "CRADLE_ADMIN_SECRET": ADMIN_SECRET,
        "CRADLE_LOG_FORMAT": "json",
        "CRADLE_LOG_LEVEL": "WARNING",
        "GATEWAY_RATE_LIMITS": json.dumps(OPEN_LIMITS),
        **{f"{name.upper()}_DATABASE_URL": pg(database) for name, database in dbs.items()},
    }
    log = work / "up.log"
    up: subprocess.Popen[str] | None = None
    code = 1
    try:
        phase = time.perf_counter()
        seeding = subprocess.run(  # noqa: ASYNC221 (nothing else runs yet)
            [str(CRADLE), "seed-demo", "--scale", "small", "--cameras", str(args.cameras), "--families", "0"],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
        )
        if seeding.returncode != 0:
            print(seeding.stdout[-2000:], seeding.stderr[-3000:])
            return 1
        seeded = time.perf_counter() - phase
        phase = time.perf_counter()
        with log.open("w") as out:
            up = subprocess.Popen(  # noqa: ASYNC220 (it outlives nothing: stopped in finally)
                [str(CRADLE), "up", "--replicas", str(args.replicas)],
                env=env,
                cwd=work,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        gateways = [f"http://127.0.0.1:{port + i}" for i in range(args.replicas)]
        deadline = time.monotonic() + 600
        while "Cradle is" not in log.read_text():
            if up.poll() is not None or time.monotonic() > deadline:
                print(log.read_text()[-3000:])
                return 1
            await asyncio.sleep(1)
        started_up = time.perf_counter() - phase
        nats_url = re.search(r"using (nats://\S+)", log.read_text()).group(1)  # type: ignore[union-attr]
        creds = work / "data" / "keys" / "nats" / f"{ADMIN}.creds"
        if not creds.exists():
            creds = next((work / "data" / "keys" / "nats").rglob(f"{ADMIN}.creds"))

        timings = Timings()
        load = Load(gateways, timings, args.concurrency)
        try:
            day = await city_day(load, args, tag, dbs)
            verdicts = await prove(load, day, dbs, nats_url, creds, tag)
        finally:
            await load.aclose()
        # The audit chain with a checkpoint past the day's last record (one every 30 s).
        await asyncio.sleep(35)
        verified, said = audit_verify(env, nats_url, creds)
        verdicts.append(("audit chain verifies (cradle audit verify)", verified, said))

        print(
            f"\ncity day: {args.replicas} replicas of every service and gateway, PostgreSQL, "
            "3-node JetStream; "
            f"{args.cameras:,} cameras × {args.heartbeats} heartbeats, {args.searches:,} searches, "
            f"{args.hires} hires, {args.bans} bans, {args.ban_checks:,} ban checks, {args.exports} exports; "
            f"concurrency {args.concurrency}"
        )
        print(f"seed-demo {seeded:.0f} s, cradle up {started_up:.0f} s, the day {day['seconds']:.1f} s")
        print(f"{'path':<42} {'requests':>8} {'2xx':>6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}")
        for label, seconds in timings.seconds.items():
            if label in ("setup", "verify"):
                continue
            ok = sum(1 for s in timings.statuses[label] if 200 <= s < 300)
            first, last = timings.spans[label]
            rate = len(seconds) / max(last - first, 1e-9)
            print(
                f"{label:<42} {len(seconds):>8,} {ok:>6,} {rate:>7.1f} "
                f"{percentile(seconds, 0.5) * 1000:>7.1f} {percentile(seconds, 0.99) * 1000:>7.1f}"
            )
        others = {
            label: set(s) for label, s in timings.statuses.items() if any(not 200 <= x < 300 for x in s)
        }
        if others:
            print("statuses other than 2xx:", {k: sorted(v) for k, v in others.items()})
        print("\nproof")
        for what, ok, detail in verdicts:
            print(f"  {'ok ' if ok else 'FAIL'} {what}" + (f"  ({detail})" if detail and not ok else ""))
        print("load:", os.getloadavg())
        code = 0 if all(ok for _, ok, _ in verdicts) else 1
    finally:
        if up is not None and up.poll() is None:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=180)
        await pg_admin([f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)' for database in dbs.values()])
        shutil.rmtree(work, ignore_errors=True)  # the run's keys and NATS stores
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
