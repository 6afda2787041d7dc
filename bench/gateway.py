"""Gateway benchmark: a small GET straight to a service and the same GET through the gateway, in the
same run on the same machine.

    .venv/bin/python bench/gateway.py [--seconds 8] [--connections 32] [--rounds 2]

Starts the registry and the gateway as uvicorn subprocesses (uvloop, httptools, no access log) on
fresh SQLite databases in a temp dir, creates a bureau client and one facility through the gateway,
then runs `wrk` against `GET /v1/facilities/{id}`:

- direct: to the registry, with an internal identity signed by the benchmark (as the gateway would);
- gateway: to the gateway with the client's bearer token — token check, enabled check, rate limit
  (the bureau limit is raised so the load is not refused), scope check, signed identity, forwarding,
  metrics and the audit record (batched) all on;
- gw-httpx: a second gateway process, identical but forwarding through the pooled
  httpx.AsyncClient (`GATEWAY_UPSTREAM_CLIENT=httpx`) instead of the native client: the comparison
  that justifies the native client.

Rounds alternate direct/gateway/gw-httpx; the median of each is printed with p99, the CPU each
process spent per request (from /proc), and the ratios. `--profile DIR` samples the registry and
the gateway with py-spy during one more gateway run (collapsed stacks). The audit log is checked
afterwards, once the gateways have stopped (each publishes a last signed checkpoint as it stops):
one record per request, chain intact and held against the newest checkpoint, as `cradle audit verify`
does. Needs `wrk` (apt) and NATS (CRADLE_BENCH_NATS_URL, default nats://127.0.0.1:4222) for the
registry's events and the gateways' audit checkpoints, in a namespace of the run's own (`benchgw<hex>`),
provisioned before the processes start and deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.stack import (
    ADMIN_SECRET,
    NATS_URL,
    bench_keys,
    delete_streams,
    ensure_admin,
    gateway_env,
    namespace,
    processes,
    provision_streams,
    service_env,
    uvicorn,
    workdir,
)
from cradle.audit import verify_chain
from cradle.layout import Keys, free_port
from cradle.migrations import upgrade
from gateway.audit import ChainKey
from gateway.audit import count as audit_count
from gateway.checkpoints import load_verify_key
from shared.db import make_engine
from shared.identity import IDENTITY_HEADER, ClientKind, Identity, IdentitySigner

FACILITY = {
    "name": "徐汇区天平街道社区托育点",
    "kind": "community_point",
    "inclusive": True,
    "has_nursery_class": False,
    "town_code": "310104003",
    "address": "天平路 100 号",
    "lat": 31.205,
    "lon": 121.440,
    "operator_name": "天平街道社区服务中心",
    "service_modes": ["full_day", "hourly"],
    "capacity": {"infant": 10, "toddler": 15, "preschool": 20},
}


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU per request, by process


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(run: Callable[[], Result], processes: dict[str, subprocess.Popen[bytes]]) -> Result:
    before = {name: cpu_seconds(p.pid) for name, p in processes.items()}
    result = run()
    for name, process in processes.items():
        used = cpu_seconds(process.pid) - before[name]
        result.cpu_ms[name] = 1000 * used / max(1, result.requests)
    return result


def wait_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # The gateway fronts only the registry here: the other services down make it degraded.
            if httpx.get(f"{url}/readyz", timeout=1).json().get("status") in ("ready", "degraded"):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, header: str, *, seconds: int, connections: int) -> Result:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", header, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Result(rps, p50, p99, total, int(bad.group(1)) if bad else 0)


async def audited(url: str) -> int:
    engine = make_engine(url)
    try:
        return await audit_count(engine)
    finally:
        await engine.dispose()


async def chain_intact(url: str, keys: Keys, ns: str) -> str:
    """`cradle audit verify`'s check: every record's keyed hash and link, held against the newest
    signed checkpoint on the namespace's stream."""
    report = await verify_chain(
        url,
        key=ChainKey.from_base64(keys.audit_hmac_key),
        nats_url=NATS_URL,
        namespace=ns,
        verify_key=load_verify_key(keys.audit_signing_key),
    )
    if not report.ok:
        return f"False ({report.problem})"
    if report.checkpoint is None:
        return "False (no checkpoint vouches for the records)"
    return f"True (checkpoint at record {report.checkpoint.seq}, {report.unanchored} newer)"


def measure(
    args: argparse.Namespace, work: Path, keys: Keys, ns: str
) -> tuple[tuple[list[Result], list[Result], list[Result]], str, int]:
    """Registry and both gateways up, the client and facility made, the wrk rounds; the processes
    are stopped on return. Returns the rounds, the facility's path and the audit count before them."""
    registry_db = f"sqlite+aiosqlite:///{work / 'registry.db'}"
    gateway_db = f"sqlite+aiosqlite:///{work / 'gateway.db'}"
    upgrade("registry", registry_db)
    upgrade("gateway", gateway_db)
    asyncio.run(ensure_admin(gateway_db))
    registry_port, gateway_port, httpx_port = free_port(), free_port(), free_port()
    registry_url, gateway_url = f"http://127.0.0.1:{registry_port}", f"http://127.0.0.1:{gateway_port}"
    httpx_gateway_url = f"http://127.0.0.1:{httpx_port}"
    gw_env = gateway_env(
        keys=keys,
        upstreams={"registry": registry_url},
        database_url=gateway_db,
        nats_url=NATS_URL,
        ns=ns,
        rate_limits={"bureau": {"rate": 1_000_000, "burst": 1_000_000}},
    )
    registry_env = service_env("registry", database_url=registry_db, keys=keys, nats_url=NATS_URL, ns=ns)
    with processes() as started:
        started += [
            uvicorn("services.registry.app:create_app", registry_port, registry_env, fast=True),
            uvicorn(
                "gateway.app:create_app",
                gateway_port,
                {**gw_env, "GATEWAY_UPSTREAM_CLIENT": "native"},
                fast=True,
            ),
            # The same gateway forwarding through the pooled httpx.AsyncClient instead, for comparison.
            uvicorn(
                "gateway.app:create_app",
                httpx_port,
                {**gw_env, "GATEWAY_UPSTREAM_CLIENT": "httpx"},
                fast=True,
            ),
        ]
        wait_up(registry_url)
        wait_up(gateway_url)
        wait_up(httpx_gateway_url)
        with httpx.Client(base_url=gateway_url, timeout=10) as http:
            form = {"grant_type": "client_credentials", "client_id": "admin", "client_secret": ADMIN_SECRET}
            admin = {
                "Authorization": "Bearer " + http.post("/v1/auth/token", data=form).json()["access_token"]
            }
            client = http.post(
                "/v1/admin/clients",
                json={
                    "name": "教委",
                    "kind": "bureau",
                    "bureau": "EDU",
                    "scopes": ["registry:read", "registry:write"],
                },
                headers=admin,
            ).json()
            form = {**form, "client_id": client["client_id"], "client_secret": client["client_secret"]}
            token = http.post("/v1/auth/token", data=form).json()["access_token"]
            bearer = {"Authorization": f"Bearer {token}"}
            facility = http.post("/v1/facilities", json=FACILITY, headers=bearer)
            if facility.status_code != 201:
                raise SystemExit(f"could not create the facility: {facility.status_code} {facility.text}")
            path = f"/v1/facilities/{facility.json()['id']}"
            assert http.get(path, headers=bearer).status_code == 200
        audited_before = asyncio.run(audited(gateway_db))

        signer = IdentitySigner(keys.internal_signing_key)
        identity = Identity(
            client_id=client["client_id"], kind=ClientKind.bureau, bureau="EDU", scopes=["registry:read"]
        )
        direct: list[Result] = []
        through: list[Result] = []
        through_httpx: list[Result] = []
        named = {"registry": started[0], "gateway": started[1], "gateway-httpx": started[2]}
        bearer_header = f"Authorization: Bearer {token}"
        for _ in range(args.rounds):
            header = f"{IDENTITY_HEADER}: {signer.sign(identity)}"  # lives 60 s: signed per run
            for results, url, with_header in (
                (direct, registry_url, header),
                (through, gateway_url, bearer_header),
                (through_httpx, httpx_gateway_url, bearer_header),
            ):
                run = functools.partial(
                    wrk, url + path, with_header, seconds=args.seconds, connections=args.connections
                )
                results.append(measured(run, named))
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            samplers = [
                subprocess.Popen(
                    [
                        shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--format",
                        "raw",
                        "-r",
                        "200",
                        "-d",
                        str(args.seconds),
                        "-p",
                        str(process.pid),
                        "-o",
                        str(args.profile / f"{name}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for name, process in zip(("registry", "gateway"), started[:2], strict=True)
            ]
            wrk(
                gateway_url + path,
                f"Authorization: Bearer {token}",
                seconds=args.seconds,
                connections=args.connections,
            )
            for sampler in samplers:
                sampler.wait(60)
    return (direct, through, through_httpx), path, audited_before


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--profile",
        type=Path,
        help="also sample both processes with py-spy during one more gateway run; collapsed stacks here",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    keys = bench_keys()
    ns = namespace("benchgw")
    asyncio.run(provision_streams(NATS_URL, ns))  # as `cradle up` does before the services start
    try:
        with workdir("cradle-bench-gw-") as work:
            results, path, audited_before = measure(args, work, keys, ns)
            # The gateways have stopped: each published a last checkpoint covering its final flush.
            audited_after = asyncio.run(audited(f"sqlite+aiosqlite:///{work / 'gateway.db'}"))
            chain_ok = asyncio.run(chain_intact(f"sqlite+aiosqlite:///{work / 'gateway.db'}", keys, ns))
    finally:
        asyncio.run(delete_streams(NATS_URL, ns))
    direct, through, through_httpx = results

    def med(results: list[Result], attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in results)

    shape = f"wrk -t2 -c{args.connections} -d{args.seconds}s, {args.rounds} rounds, median"
    print(f"\nGET {path.rsplit('/', 1)[0]}/{{id}}  {shape}")
    print(f"{'':10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}  per round (req/s, p99)")
    runs = (("direct", direct), ("gateway", through), ("gw-httpx", through_httpx))
    for name, results in runs:
        rounds = ", ".join(f"{r.rps:,.0f}/{r.p99_ms:.1f}" for r in results)
        rps, p50, p99 = med(results, "rps"), med(results, "p50_ms"), med(results, "p99_ms")
        bad = sum(r.non_2xx for r in results)
        print(f"{name:10} {rps:>10,.0f} {p50:>8.2f} {p99:>8.2f} {bad:>8}  {rounds}")
    for name, results, proc in (
        ("direct", direct, "gateway"),
        ("gateway", through, "gateway"),
        ("gw-httpx", through_httpx, "gateway-httpx"),
    ):
        cpu = {p: statistics.median(r.cpu_ms[p] for r in results) for p in ("registry", proc)}
        print(f"CPU per request, {name:8}: registry {cpu['registry']:.3f} ms, gateway {cpu[proc]:.3f} ms")
    ratio = med(through, "rps") / med(direct, "rps")
    p99_ratio = med(through, "p99_ms") / med(direct, "p99_ms")
    print(f"throughput ratio gateway/direct: {ratio:.2f}x (goal >= 0.9x, issue 15)")
    print(f"p99 ratio gateway/direct:        {p99_ratio:.2f}x (goal < 2x)")
    httpx_ratio = med(through_httpx, "rps") / med(direct, "rps")
    httpx_p99 = med(through_httpx, "p99_ms") / med(direct, "p99_ms")
    print(f"with httpx as the upstream client: {httpx_ratio:.2f}x throughput, {httpx_p99:.2f}x p99")
    sent = sum(r.requests for r in through) + sum(r.requests for r in through_httpx)
    print(
        f"audit: {audited_after - audited_before:,} records written for {sent:,} gateway requests"
        f" (wrk counts completed replies only); chain intact: {chain_ok}"
    )


if __name__ == "__main__":
    main()
