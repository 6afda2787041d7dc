"""A legitimate client's token latency while the token endpoint is under attack, at the production
argon2 cost, in the same run as its baseline (the same client alone).

    .venv/bin/python bench/token_under_attack.py [--requests 40] [--attackers 16] [--seconds 20]

Starts the gateway as a uvicorn subprocess (uvloop, httptools) on a fresh SQLite database, with the
default argon2 cost (`Argon2Cost()`, RFC 9106's second recommendation) and the default sign-in
limits and lanes. Then:

- alone: the client asks for a token `--requests` times, one after another, from its own address
  (which also makes its (client, address) pair known, as its everyday sign-ins would);
- attacked: the same, from the same address, while `--attackers` tasks send wrong secrets as fast as
  their answers come, half of them for other client ids, half for the client's own id, each from an
  address of its own. uvicorn trusts X-Forwarded-For from 127.0.0.1 (its default
  `forwarded_allow_ips`), as it would from a reverse proxy in front of it, so the header gives each
  party its address.

Prints p50/p99 of both, their ratios, and what the attackers got (401 = an argon2 check spent on a
guess, 429 = refused by the failure buckets, 503 = the general lane full), with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.stack import (
    NATS_URL,
    bench_keys,
    delete_streams,
    gateway_env,
    namespace,
    provision_streams,
    uvicorn,
    workdir,
)
from cradle.layout import free_port
from cradle.migrations import upgrade
from gateway import service as gateway_service
from gateway.config import GatewaySettings, SignInLimits
from gateway.hashing import Argon2Cost, SecretHasher
from gateway.schemas import ClientCreate
from shared.db import make_engine
from shared.identity import ClientKind


async def make_client(database_url: str) -> tuple[str, str]:
    engine = make_engine(database_url)
    hasher = SecretHasher(Argon2Cost())
    try:
        from sqlalchemy.ext.asyncio import async_sessionmaker

        async with async_sessionmaker(engine)() as session, session.begin():
            created = await gateway_service.create_client(
                session=session,
                hasher=hasher,
                data=ClientCreate(name="Bench app", kind=ClientKind.app, scopes=["guidance:read"]),
            )
        return created.client_id, created.client_secret
    finally:
        await engine.dispose()


def form(client_id: str, secret: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}


LEGITIMATE_ADDRESS = "198.51.100.7"


async def legitimate(
    base: str, client_id: str, secret: str, requests: int, seen: Counter[int]
) -> list[float]:
    """Latency of the answers, all from the client's one address, as a deployed client signs in."""
    took: list[float] = []
    headers = {"X-Forwarded-For": LEGITIMATE_ADDRESS}
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:
        for _ in range(requests):
            started = time.perf_counter()
            response = await client.post("/v1/auth/token", data=form(client_id, secret))
            took.append((time.perf_counter() - started) * 1000)
            seen[response.status_code] += 1
    return took


async def attacker(base: str, n: int, target: str, stop: asyncio.Event, seen: Counter[int]) -> None:
    headers = {"X-Forwarded-For": f"203.0.113.{n + 1}"}
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:
        i = 0
        while not stop.is_set():
            i += 1
            response = await client.post("/v1/auth/token", data=form(target, f"wrong-{n}-{i}"))
            seen[response.status_code] += 1


def p99(took: list[float]) -> float:
    ordered = sorted(took)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def percentiles(took: list[float]) -> str:
    return f"p50 {statistics.median(took):7.1f} ms   p99 {p99(took):7.1f} ms   (n={len(took)})"


async def run(base: str, client_id: str, secret: str, args: argparse.Namespace) -> None:
    alone_seen, attacked_seen, seen = Counter[int](), Counter[int](), Counter[int]()
    alone = await legitimate(base, client_id, secret, args.requests, alone_seen)
    stop = asyncio.Event()
    targets = [f"app-{n:012x}" if n % 2 else client_id for n in range(args.attackers)]
    attackers = [asyncio.create_task(attacker(base, n, t, stop, seen)) for n, t in enumerate(targets)]
    await asyncio.sleep(2)  # let the attack reach its steady state: buckets drained
    started = time.perf_counter()
    attacked = await legitimate(base, client_id, secret, args.requests, attacked_seen)
    await asyncio.sleep(max(0.0, args.seconds - (time.perf_counter() - started)))
    stop.set()
    await asyncio.gather(*attackers)
    print(f"legitimate client alone      {percentiles(alone)}   answers {dict(alone_seen)}")
    print(f"legitimate client, attacked  {percentiles(attacked)}   answers {dict(attacked_seen)}")
    other = {code: n for code, n in seen.items() if code not in (401, 429, 503)}
    print(
        f"ratio p50 {statistics.median(attacked) / statistics.median(alone):.2f}x, "
        f"p99 {p99(attacked) / p99(alone):.2f}x; attackers' answers "
        f"401 {seen[401]}, 429 {seen[429]}, 503 {seen[503]}{f', other {other}' if other else ''}"
        f" over {time.perf_counter() - started + 2:.0f} s (401 = an argon2 check spent on a guess); "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--attackers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    ns = namespace("benchattack")
    asyncio.run(provision_streams(NATS_URL, ns))  # the gateway's audit checkpoints go to its stream
    try:
        with workdir("cradle-bench-attack-") as work:
            attack(args, work, ns)
    finally:
        asyncio.run(delete_streams(NATS_URL, ns))


def attack(args: argparse.Namespace, work: Path, ns: str) -> None:
    database_url = f"sqlite+aiosqlite:///{work / 'gateway.db'}"
    env = gateway_env(keys=bench_keys(), upstreams={}, database_url=database_url, nats_url=NATS_URL, ns=ns)
    env["CRADLE_LOG_LEVEL"] = "ERROR"
    os.environ.update(env)  # the migration reads the PII keys from the environment
    upgrade("gateway", database_url)
    client_id, secret = asyncio.run(make_client(database_url))
    port = free_port()
    process = uvicorn("gateway.app:create_app", port, env, fast=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("the gateway did not start")
            time.sleep(0.3)
        fields = GatewaySettings.model_fields
        lanes = {
            name: fields[f"sign_in_{name}"].default
            for name in ("hash_workers", "hash_queue", "hash_nice", "known_workers", "known_queue")
        }
        print(f"argon2 {Argon2Cost().model_dump()}; {args.attackers} attackers; {SignInLimits()!r}")
        print(f"lanes {lanes}; load average before {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        asyncio.run(run(base, client_id, secret, args))
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(15)
        if process.poll() is None:
            process.kill()


if __name__ == "__main__":
    main()
