"""Ban-check benchmark: checks per second and p99 with 1,000,000 bans in the table, straight to the
workforce service and through the gateway, in the same run.

    .venv/bin/python bench/ban_check.py [--bans 1000000] [--seconds 15] [--concurrency 16] [--warmup 5]

What it does, all on loopback, in a temporary directory:

1. migrates a SQLite workforce database and bulk-loads `--bans` bans (and their `person` rows) with
   SQLAlchemy Core executemany, in batches of 50,000 — each ban a distinct, valid ID number;
2. starts a nats-server of its own and provisions the run's streams on it, then the workforce
   service and the gateway as uvicorn subprocesses (one worker each, as `cradle up` runs them, with
   keys made for the run: bench/stack.py), the gateway configured as
   `cradle.layout.gateway_env` configures it, with rate limits raised so the limiter never
   refuses the load (the benchmark measures the path, not the limiter);
3. after `--warmup` unmeasured seconds, sends `POST /v1/ban-checks` for `--seconds` per path, with
   `--concurrency` connections, half for banned people and half for people who are not: first
   straight to the service with a gateway-signed identity header (re-signed every 20 s; tokens live
   60 s), then through the gateway with a bureau client's bearer token. Every answer is checked
   (banned or not, as expected); every check writes its audit row, as in production;
4. prints checks/s, p50 and p99 for both, and the ratio gateway / direct.

The temporary directory is removed at the end. The load generator (httpx) shares the machine's cores
with the servers: compare the two figures with each other, within one run (BASELINES.md).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import create_engine, event

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
from cradle.layout import free_port
from cradle.migrations import upgrade
from services.workforce.models import Ban, Person
from shared.identity import IDENTITY_HEADER, ClientKind, Identity, IdentitySigner
from shared.pii import KeyedHasher, PiiCipher, mask, national_id_check_char

BATCH = 50_000


def banned_id(n: int) -> str:
    """The n-th banned person's ID number: Shanghai 徐汇, a distinct birth date and sequence."""
    first17 = f"310104{date(1950, 1, 1) + timedelta(days=n // 1000):%Y%m%d}{n % 1000:03d}"
    return first17 + national_id_check_char(first17)


def clean_id(n: int) -> str:
    """Someone never banned (another district's code)."""
    first17 = f"310105{date(1960, 1, 1) + timedelta(days=n // 1000):%Y%m%d}{n % 1000:03d}"
    return first17 + national_id_check_char(first17)


def load_bans(url: str, count: int, hasher: KeyedHasher, cipher: PiiCipher) -> float:
    """Bulk insert with Core executemany; returns rows (bans + persons) per second."""
    engine = create_engine(url.replace("+aiosqlite", ""))

    @event.listens_for(engine, "connect")
    def _fast(connection, _record):  # type: ignore[no-untyped-def]
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    # One ciphertext for all: the check never decrypts, and AES-GCM per row would only time the CPU.
    sealed = cipher.encrypt(banned_id(0), context="national_id")
    issued_at = datetime.now(UTC)
    started = time.perf_counter()
    with engine.begin() as connection:
        for start in range(0, count, BATCH):
            numbers = range(start, min(start + BATCH, count))
            hashes = [hasher.digest(banned_id(n)) for n in numbers]
            connection.execute(
                Person.__table__.insert(), [{"id_hash": h, "created_at": issued_at} for h in hashes]
            )
            connection.execute(
                Ban.__table__.insert(),
                [
                    {
                        "id": str(uuid.UUID(int=random.getrandbits(128), version=4)),
                        "id_hash": h,
                        "practitioner_id": None,
                        "name": "bench",
                        "id_number_key_id": sealed.key_id,
                        "id_number_encrypted": sealed.ciphertext,
                        "id_number_masked": mask(banned_id(n)),
                        "reason": "benchmark",
                        "decision_ref": f"BENCH-{n}",
                        "role": "abuser",
                        "incident_id": None,
                        "status": "active",
                        "issued_by": "bench",
                        "issued_at": issued_at,
                    }
                    for n, h in zip(numbers, hashes, strict=True)
                ],
            )
            print(f"  loaded {min(start + BATCH, count):>9,} bans", end="\r", flush=True)
    elapsed = time.perf_counter() - started
    engine.dispose()
    print()
    return 2 * count / elapsed


@dataclass
class Result:
    name: str
    checks: int  # requests answered
    seconds: float
    latencies_ms: list[float]
    errors: int
    ids: int = 0  # ID numbers checked (a batch call checks many)

    @property
    def rate(self) -> float:
        return self.checks / self.seconds

    @property
    def id_rate(self) -> float:
        return self.ids / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


Send = Callable[[httpx.AsyncClient, random.Random], Awaitable[tuple[bool, int]]]


async def run_requests(*, name: str, url: str, send: Send, seconds: float, concurrency: int) -> Result:
    """`concurrency` workers looping on `send` (which says whether the answer was right and how many
    ID numbers it checked), every latency recorded; the same generator for every path."""
    latencies: list[float] = []
    errors = checks = ids = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        rng = random.Random(7)
        for _ in range(20):  # warm-up: connections, caches, the JIT of SQLite's page cache
            await send(client, rng)
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()

        async def worker(seed: int) -> None:
            nonlocal errors, checks, ids
            local = random.Random(seed)
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                ok, checked = await send(client, local)
                latencies.append((time.perf_counter() - began) * 1000)
                checks += 1
                ids += checked
                errors += 0 if ok else 1

        await asyncio.gather(*(worker(seed) for seed in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Result(name, checks, elapsed, latencies, errors, ids)


async def run_load(
    *,
    name: str,
    url: str,
    headers_of: Callable[[], dict[str, str]],
    bans: int,
    seconds: float,
    concurrency: int,
) -> Result:
    """Single checks, half of banned people, half of people who are not."""

    async def one(client: httpx.AsyncClient, rng: random.Random) -> tuple[bool, int]:
        banned = rng.random() < 0.5
        number = banned_id(rng.randrange(bans)) if banned else clean_id(rng.randrange(bans))
        response = await client.post("/v1/ban-checks", json={"id_number": number}, headers=headers_of())
        return response.status_code == 200 and response.json()["banned"] is banned, 1

    return await run_requests(name=name, url=url, send=one, seconds=seconds, concurrency=concurrency)


async def run_batches(
    *, url: str, headers: dict[str, str], bans: int, size: int, seconds: float, concurrency: int
) -> Result:
    """Batch checks of `size` numbers, half banned, every answer checked item by item."""

    async def one(client: httpx.AsyncClient, rng: random.Random) -> tuple[bool, int]:
        expected = [rng.random() < 0.5 for _ in range(size)]
        numbers = [banned_id(rng.randrange(bans)) if b else clean_id(rng.randrange(bans)) for b in expected]
        response = await client.post("/v1/ban-checks/batch", json={"id_numbers": numbers}, headers=headers)
        if response.status_code != 200:
            return False, 0
        items = response.json()["items"]
        return [i["banned"] for i in items] == expected, len(items)

    return await run_requests(
        name=f"batch of {size:,}", url=url, send=one, seconds=seconds, concurrency=concurrency
    )


async def run_trivial(*, url: str, seconds: float, concurrency: int) -> Result:
    """The baseline: the gateway's own /healthz, through the same generator."""

    async def one(client: httpx.AsyncClient, _rng: random.Random) -> tuple[bool, int]:
        return (await client.get("/healthz")).status_code == 200, 0

    return await run_requests(
        name="gateway /healthz", url=url, send=one, seconds=seconds, concurrency=concurrency
    )


async def main(args: argparse.Namespace) -> None:
    with workdir("cradle-bench-ban-") as work:
        await run(args, work)


async def run(args: argparse.Namespace, work: Path) -> None:
    keys = bench_keys()
    pii = keys.pii["workforce"]  # the bans are sealed and hashed with the keys the service runs with
    hasher = KeyedHasher(base64.b64decode(pii.hmac_key))
    cipher = PiiCipher({kid: base64.b64decode(key) for kid, key in pii.keys.items()}, pii.active_key_id)

    workforce_db = f"sqlite+aiosqlite:///{work / 'workforce.db'}"
    gateway_db = f"sqlite+aiosqlite:///{work / 'gateway.db'}"
    print(f"workdir {work}")
    await asyncio.to_thread(upgrade, "workforce", workforce_db)
    await asyncio.to_thread(upgrade, "gateway", gateway_db)
    print(f"bulk-loading {args.bans:,} bans (SQLAlchemy Core executemany, {BATCH:,} per batch)")
    rows_per_second = await asyncio.to_thread(load_bans, workforce_db, args.bans, hasher, cipher)
    await ensure_admin(gateway_db)

    workforce_port, gateway_port = free_port(), free_port()
    ns = namespace("benchban")
    unlimited = {"rate": 1_000_000, "burst": 10_000_000}
    with processes() as started:
        nats_url = await start_nats(work, started)
        await provision_streams(nats_url, ns)  # as `cradle up` does before the services start
        workforce_env = service_env(
            "workforce", database_url=workforce_db, keys=keys, nats_url=nats_url, ns=ns
        ) | {"WORKFORCE_JOBS_INTERVAL_SECONDS": "0"}
        direct_url, gateway_url = f"http://127.0.0.1:{workforce_port}", f"http://127.0.0.1:{gateway_port}"
        gw_env = gateway_env(
            keys=keys,
            upstreams={"workforce": direct_url},
            database_url=gateway_db,
            nats_url=nats_url,
            ns=ns,
            rate_limits={"bureau": unlimited, "admin": unlimited},
        )
        started.append(
            uvicorn("services.workforce.app:create_app", workforce_port, workforce_env, work / "wf.log")
        )
        started.append(uvicorn("gateway.app:create_app", gateway_port, gw_env, work / "gw.log"))
        await wait_healthy(direct_url, started[1], log=work / "wf.log")
        await wait_healthy(gateway_url, started[2], log=work / "gw.log", degraded_ok=True)

        async with httpx.AsyncClient(base_url=gateway_url) as client:
            token = await client.post(
                "/v1/auth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "admin",
                    "client_secret": ADMIN_SECRET,
                },
            )
            admin = {"Authorization": f"Bearer {token.raise_for_status().json()['access_token']}"}
            created = await client.post(
                "/v1/admin/clients",
                json={
                    "name": "市人社局 (bench)",
                    "kind": "bureau",
                    "bureau": "HRSS",
                    "scopes": ["workforce:read"],
                },
                headers=admin,
            )
            created.raise_for_status()
            bureau_token = await client.post(
                "/v1/auth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": created.json()["client_id"],
                    "client_secret": created.json()["client_secret"],
                },
            )
            bearer = {"Authorization": f"Bearer {bureau_token.raise_for_status().json()['access_token']}"}

        signer = IdentitySigner(keys.internal_signing_key)
        caller = Identity(
            client_id="bench-hrss", kind=ClientKind.bureau, bureau="HRSS", scopes=["workforce:read"]
        )
        signed = {"header": {IDENTITY_HEADER: signer.sign(caller)}, "at": time.monotonic()}

        def direct_headers() -> dict[str, str]:
            # The gateway's identity tokens live 60 s; re-sign well before that.
            if time.monotonic() - signed["at"] > 20:
                signed["header"] = {IDENTITY_HEADER: signer.sign(caller)}
                signed["at"] = time.monotonic()
            return signed["header"]  # type: ignore[return-value]

        common = {"bans": args.bans, "seconds": args.seconds, "concurrency": args.concurrency}
        print(f"load: {args.seconds:g} s per path, {args.concurrency} connections, half banned, half not")
        # Unmeasured: brings the 1M-row table's pages into the cache for whichever path goes first.
        await run_load(
            name="warm-up", url=direct_url, headers_of=direct_headers, **{**common, "seconds": args.warmup}
        )
        trivial = await run_trivial(url=gateway_url, seconds=args.seconds, concurrency=args.concurrency)
        direct = await run_load(name="direct", url=direct_url, headers_of=direct_headers, **common)
        through = await run_load(name="gateway", url=gateway_url, headers_of=lambda: bearer, **common)
        batch = await run_batches(
            url=gateway_url,
            headers=bearer,
            bans=args.bans,
            size=args.batch_size,
            seconds=args.seconds,
            concurrency=args.batch_concurrency,
        )

    print()
    print(f"bans in the table:        {args.bans:,}  (bulk load {rows_per_second:,.0f} rows/s)")
    for result in (trivial, direct, through):
        print(
            f"{result.name + ':':<25} {result.rate:8,.0f} req/s      p50 {result.quantile(0.50):6.1f} ms   "
            f"p99 {result.quantile(0.99):6.1f} ms   "
            f"({result.checks:,} requests, {result.errors} wrong or failed)"
        )
    print(
        f"{batch.name + ':':<25} {batch.id_rate:8,.0f} IDs/s      p50 {batch.quantile(0.50):6.1f} ms   "
        f"p99 {batch.quantile(0.99):6.1f} ms   "
        f"({batch.checks:,} calls, {batch.ids:,} IDs, {batch.errors} wrong or failed; "
        f"{args.batch_concurrency} connections)"
    )
    print(
        "ratio single check through the gateway / gateway /healthz: "
        f"{through.rate / trivial.rate:.2f}x throughput, "
        f"{through.quantile(0.99) / trivial.quantile(0.99):.2f}x p99"
    )
    print(
        f"ratio batch IDs/s / single checks/s (both through the gateway): {batch.id_rate / through.rate:.1f}x"
    )
    print(
        f"ratio gateway / direct (single check): {through.rate / direct.rate:.2f}x throughput, "
        f"{through.quantile(0.99) / direct.quantile(0.99):.2f}x p99"
    )
    print(
        f"mean latency direct {statistics.fmean(direct.latencies_ms):.1f} ms, "
        f"gateway {statistics.fmean(through.latencies_ms):.1f} ms; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    if direct.errors or through.errors or batch.errors or trivial.errors:
        raise SystemExit("some checks failed or answered wrongly")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bans", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds before the first path")
    parser.add_argument("--batch-size", type=int, default=1000, help="ID numbers per batch call (max 1,000)")
    parser.add_argument("--batch-concurrency", type=int, default=4, help="batch calls in flight")
    asyncio.run(main(parser.parse_args()))
