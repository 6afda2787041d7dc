"""A list exported as a file, through the gateway: 100,000 alerts as CSV and as XLSX, with the peak
memory each process (monitoring, the gateway) took on top of what it held before the export, next
to the same export of 1,000 alerts in the same run. Bounded memory means the 100,000-row peak is
about the 1,000-row one, not a hundred times it.

Peak memory is each process's anonymous resident memory (`RssAnon` in /proc/<pid>/status: heap
and stacks, not the database file SQLite maps), sampled every 20 ms during the export, less what it
was just before (Linux).

    .venv/bin/python bench/export.py [--rows 100000] [--baseline-rows 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
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
from cradle.layout import free_port
from cradle.migrations import upgrade
from services.monitoring.models import Alert, Facility
from shared.db import make_engine
from shared.export import XLSX

BATCH = 10_000


async def seed(database_url: str, counts: dict[str, int]) -> None:
    """One facility per count, with that many alerts (Core executemany, straight to the database)."""
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    try:
        async with engine.begin() as connection:
            for facility_id, count in counts.items():
                await connection.execute(
                    insert(Facility.__table__),
                    [
                        {
                            "id": facility_id,
                            "name": "徐汇区天平街道社区托育点",
                            "kind": "community_point",
                            "district_code": "310104",
                            "town_code": "310104003",
                            "status": "approved",
                            "opening_hours": [],
                            "version": 1,
                            "source_event_at": now,
                            "updated_at": now,
                        }
                    ],
                )
                for start in range(0, count, BATCH):
                    rows = []
                    for n in range(start, min(start + BATCH, count)):
                        at = now - timedelta(seconds=n)
                        rows.append(
                            {
                                "id": str(uuid.uuid4()),
                                "facility_id": facility_id,
                                "district_code": "310104",
                                "type": "camera_offline",
                                "severity": "medium",
                                "status": "open",
                                "source": "cctv",
                                "count": 1,
                                "first_at": at,
                                "last_at": at,
                                "raised_at": at,
                                "details": {"note": "摄像头离线", "n": n},
                                "version": 1,
                                "updated_at": at,
                            }
                        )
                    await connection.execute(insert(Alert.__table__), rows)
    finally:
        await engine.dispose()


def anonymous_kib(pid: int) -> int:
    """The process's own memory (heap, stacks), without the files it maps: SQLite maps its database
    (`mmap_size`), and those pages count in the resident set without being held by the export."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise RuntimeError("no RssAnon in /proc (Linux only)")


async def sample_peaks(pids: dict[str, int], peaks: dict[str, int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for name, pid in pids.items():
            peaks[name] = max(peaks[name], anonymous_kib(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.02)


async def export(
    gateway_url: str, headers: dict[str, str], accept: str, facility_id: str, pids: dict[str, int]
) -> dict[str, float]:
    before = {name: anonymous_kib(pid) for name, pid in pids.items()}
    peaks = dict(before)
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_peaks(pids, peaks, stop))
    started = time.perf_counter()
    size = chunks = 0
    try:
        async with (
            httpx.AsyncClient(base_url=gateway_url, timeout=600) as client,
            client.stream(
                "GET",
                "/v1/alerts",
                params={"facility_id": facility_id},
                headers={**headers, "Accept": accept},
            ) as response,
        ):
            response.raise_for_status()
            async for chunk in response.aiter_raw():
                size += len(chunk)
                chunks += 1
    finally:
        stop.set()
        await sampler
    seconds = time.perf_counter() - started
    figures: dict[str, float] = {"seconds": seconds, "bytes": size, "chunks": chunks}
    for name in pids:
        figures[f"{name}_peak_mib"] = (peaks[name] - before[name]) / 1024
    return figures


async def bureau_headers(gateway_url: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=gateway_url) as client:

        async def token(client_id: str, secret: str) -> str:
            form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
            return (await client.post("/v1/auth/token", data=form)).raise_for_status().json()["access_token"]

        admin = {"Authorization": f"Bearer {await token('admin', ADMIN_SECRET)}"}
        body = {
            "name": "上海市教育委员会 (bench)",
            "kind": "bureau",
            "bureau": "EDU",
            "scopes": ["monitoring:read"],
        }
        created = (await client.post("/v1/admin/clients", json=body, headers=admin)).raise_for_status().json()
        return {"Authorization": f"Bearer {await token(created['client_id'], created['client_secret'])}"}


async def main(args: argparse.Namespace) -> None:
    with workdir("cradle-bench-export-") as work, processes() as started:
        keys = bench_keys()
        monitoring_db = f"sqlite+aiosqlite:///{work / 'monitoring.db'}"
        gateway_db = f"sqlite+aiosqlite:///{work / 'gateway.db'}"
        await asyncio.to_thread(upgrade, "monitoring", monitoring_db)
        await asyncio.to_thread(upgrade, "gateway", gateway_db)
        small, large = str(uuid.uuid4()), str(uuid.uuid4())
        await seed(monitoring_db, {small: args.baseline_rows, large: args.rows})
        await ensure_admin(gateway_db)
        monitoring_port, gateway_port = free_port(), free_port()
        ns = namespace("benchexport")
        nats_url = await start_nats(work, started)
        await provision_streams(nats_url, ns)
        unlimited = {"rate": 1_000_000, "burst": 10_000_000}
        env = service_env("monitoring", database_url=monitoring_db, keys=keys, nats_url=nats_url, ns=ns)
        started.append(
            uvicorn(
                "services.monitoring.app:create_app",
                monitoring_port,
                env | {"MONITORING_JOBS_INTERVAL_SECONDS": "0"},
                work / "mon.log",
            )
        )
        upstreams = {"monitoring": f"http://127.0.0.1:{monitoring_port}"}
        gw_env = gateway_env(
            keys=keys,
            upstreams=upstreams,
            database_url=gateway_db,
            nats_url=nats_url,
            ns=ns,
            rate_limits={"bureau": unlimited, "admin": unlimited},
        )
        started.append(uvicorn("gateway.app:create_app", gateway_port, gw_env, work / "gw.log"))
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        await wait_healthy(upstreams["monitoring"], started[1], log=work / "mon.log")
        await wait_healthy(gateway_url, started[2], log=work / "gw.log", degraded_ok=True)
        headers = await bureau_headers(gateway_url)
        pids = {"monitoring": started[1].pid, "gateway": started[2].pid}
        # Unmeasured warm-up: imports, pools, the first query plans.
        await export(gateway_url, headers, "text/csv", small, pids)
        await export(gateway_url, headers, XLSX, small, pids)
        print(f"alerts exported through the gateway (monitoring on SQLite), load average {_load()}")
        print(f"{'format':6} {'rows':>8} {'seconds':>8} {'rows/s':>8} {'MiB':>7} {'chunks':>7} "
              f"{'monitoring peak':>16} {'gateway peak':>13}")  # fmt: skip
        results = {}
        for accept, label in (("text/csv", "csv"), (XLSX, "xlsx")):
            for rows, facility in ((args.baseline_rows, small), (args.rows, large)):
                f = await export(gateway_url, headers, accept, facility, pids)
                results[(label, rows)] = f
                print(
                    f"{label:6} {rows:8,} {f['seconds']:8.1f} {rows / f['seconds']:8,.0f} "
                    f"{f['bytes'] / 2**20:7.1f} {f['chunks']:7,.0f} "
                    f"{f['monitoring_peak_mib']:13.1f} MiB {f['gateway_peak_mib']:9.1f} MiB"
                )
        print()
        for label in ("csv", "xlsx"):
            small_f, large_f = results[(label, args.baseline_rows)], results[(label, args.rows)]
            print(
                f"{label}: {args.rows:,} rows took {large_f['monitoring_peak_mib']:.1f} MiB more at the peak "
                f"in monitoring and {large_f['gateway_peak_mib']:.1f} MiB in the gateway; "
                f"{args.baseline_rows:,} rows {small_f['monitoring_peak_mib']:.1f} and "
                f"{small_f['gateway_peak_mib']:.1f} MiB ({args.rows // args.baseline_rows}x the rows)"
            )


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline-rows", type=int, default=1_000)
    asyncio.run(main(parser.parse_args()))
