"""Ban propagation benchmark: the time from `POST /v1/bans` to every employment of the person ended
and every facility's credit entry written, p50 / p99 over `--bans` bans, in one run with its floor.

    .venv/bin/python bench/ban_propagation.py [--bans 100] [--facilities 2]

On loopback, in a temporary directory, with SQLite databases: a nats-server of its own with the run's
streams provisioned, then the registry, the workforce and the gateway as uvicorn subprocesses (one
worker each, as `cradle up` runs them, with keys made for the run: bench/stack.py; outbox poll
fallback left at its default, so delivery is the commit-woken path). Through
the gateway it applies for and approves `--facilities` facilities, registers `--bans` certified
practitioners and hires each at every facility. Then, one ban at a time:

- ended: `POST /v1/bans` returns once the ban and the end of every active employment are committed
  (one transaction), so the reply time is the time to "every employment ended"; the reply's
  notifications are checked to name every facility;
- credit: from the same start until the registry's public credit record of *every* facility shows
  the ban's entry (polled through the gateway every 5 ms): outbox → JetStream → the registry's
  consumer → its inbox and credit entry, and the read back.

Floor, measured in the same run on the same NATS server: a nats-py JetStream publish, acked, to a
stream of the benchmark's own, and its arrival at a pull consumer on a second connection
(p50 / p99 over the same number of messages): what any event-driven propagation costs at least.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import nats
from nats.js.api import StreamConfig

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
from shared.pii import national_id_check_char

REVIEWERS = ("EDU", "HEALTH", "FIRE", "SAMR")
FACILITY = {
    "kind": "community_point",
    "inclusive": True,
    "has_nursery_class": False,
    "town_code": "310104003",
    "address": "天平路 100 号",
    "lat": 31.205,
    "lon": 121.440,
    "operator_name": "天平街道社区服务中心",
    "service_modes": ["full_day"],
    "capacity": {"infant": 10, "toddler": 15, "preschool": 20},
}


def id_number(n: int) -> str:
    first17 = f"310104{date(1980, 1, 1) + timedelta(days=n):%Y%m%d}{n % 1000:03d}"
    return first17 + national_id_check_char(first17)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def floor(nats_url: str, n: int) -> list[float]:
    """Publish → ack → delivered to a pull consumer on another connection, one at a time, in ms."""
    publisher, reader = await nats.connect(nats_url), await nats.connect(nats_url)
    try:
        js, jr = publisher.jetstream(), reader.jetstream()
        await js.add_stream(StreamConfig(name="BENCH_FLOOR", subjects=["benchfloor.>"]))
        subscription = await jr.pull_subscribe("benchfloor.ban", durable="floor")
        took = []
        for _ in range(n):
            body = os.urandom(300)
            started = time.perf_counter()
            await js.publish("benchfloor.ban", body, headers={"Nats-Msg-Id": uuid.uuid4().hex})
            [message] = await subscription.fetch(1, timeout=5)
            await message.ack()
            took.append((time.perf_counter() - started) * 1000)
        return took
    finally:
        await publisher.close()
        await reader.close()


async def main(args: argparse.Namespace) -> None:
    with workdir("cradle-bench-propagation-") as work:
        await start(args, work)


async def start(args: argparse.Namespace, work: Path) -> None:
    keys = bench_keys()
    urls = {
        name: f"sqlite+aiosqlite:///{work / f'{name}.db'}" for name in ("registry", "workforce", "gateway")
    }
    for name, url in urls.items():
        await asyncio.to_thread(upgrade, name, url)
    await ensure_admin(urls["gateway"])

    registry_port, workforce_port, gateway_port = (free_port() for _ in range(3))
    ns = namespace("benchprop")
    unlimited = {"rate": 1_000_000, "burst": 10_000_000}
    upstreams = {
        "registry": f"http://127.0.0.1:{registry_port}",
        "workforce": f"http://127.0.0.1:{workforce_port}",
    }
    with processes() as started:
        nats_url = await start_nats(work, started)
        await provision_streams(nats_url, ns)  # as `cradle up` does before the services start
        registry_env = service_env(
            "registry", database_url=urls["registry"], keys=keys, nats_url=nats_url, ns=ns
        )
        workforce_env = service_env(
            "workforce", database_url=urls["workforce"], keys=keys, nats_url=nats_url, ns=ns
        ) | {"WORKFORCE_JOBS_INTERVAL_SECONDS": "0"}
        gw_env = gateway_env(
            keys=keys,
            upstreams=upstreams,
            database_url=urls["gateway"],
            nats_url=nats_url,
            ns=ns,
            rate_limits={kind: unlimited for kind in ("bureau", "admin", "operator")},
        )
        started.append(
            uvicorn("services.registry.app:create_app", registry_port, registry_env, work / "reg.log")
        )
        started.append(
            uvicorn("services.workforce.app:create_app", workforce_port, workforce_env, work / "wf.log")
        )
        started.append(uvicorn("gateway.app:create_app", gateway_port, gw_env, work / "gw.log"))
        gateway = f"http://127.0.0.1:{gateway_port}"
        for process, url, log in zip(
            started[1:], (*upstreams.values(), gateway), ("reg.log", "wf.log", "gw.log"), strict=True
        ):
            await wait_healthy(url, process, log=work / log, degraded_ok=url == gateway)
        async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
            await run(args, client, nats_url)


async def run(args: argparse.Namespace, client: httpx.AsyncClient, nats_url: str) -> None:
    async def token(client_id: str, secret: str) -> dict[str, str]:
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        issued = (await client.post("/v1/auth/token", data=form)).raise_for_status().json()
        return {"Authorization": f"Bearer {issued['access_token']}"}

    admin = await token("admin", ADMIN_SECRET)

    async def new_client(**body: object) -> dict[str, str]:
        created = (await client.post("/v1/admin/clients", json=body, headers=admin)).raise_for_status().json()
        return await token(created["client_id"], created["client_secret"])

    operator = await new_client(
        name="连锁托育 (bench)",
        kind="operator",
        scopes=["registry:read", "registry:write", "workforce:read", "workforce:write"],
    )
    reviewers = {
        d: await new_client(name=d, kind="bureau", bureau=d, scopes=["registry:review"]) for d in REVIEWERS
    }
    court = await new_client(name="POLICE (bench)", kind="bureau", bureau="POLICE", scopes=["workforce:ban"])
    reader = await new_client(name="EDU (bench)", kind="bureau", bureau="EDU", scopes=["registry:read"])

    facilities = []
    for n in range(args.facilities):
        body = {**FACILITY, "name": f"托育点 {n}"}
        facility = (
            (await client.post("/v1/facilities", json=body, headers=operator)).raise_for_status().json()
        )
        for department in REVIEWERS:
            review = {"department": department, "decision": "approve"}
            (
                await client.post(
                    f"/v1/facilities/{facility['id']}/reviews", json=review, headers=reviewers[department]
                )
            ).raise_for_status()
        facilities.append(facility["id"])
    print(f"{args.facilities} facilities approved; registering and hiring {args.bans} practitioners at each")

    today = date.today()
    people = []
    for n in range(args.bans):
        person = (
            (
                await client.post(
                    "/v1/practitioners",
                    json={"id_number": id_number(n), "name": f"员工{n}"},
                    headers=operator,
                )
            )
            .raise_for_status()
            .json()
        )
        certificate = {
            "type": "infant_carer",
            "number": f"C-{n}",
            "issuer": "上海市职业技能鉴定中心",
            "issued_on": (today - timedelta(days=100)).isoformat(),
            "expires_on": (today + timedelta(days=900)).isoformat(),
        }
        health = {  # 健康合格证明: a hire needs one valid on its first day
            "type": "health",
            "number": f"JK-{n}",
            "issuer": "上海市疾病预防控制中心",
            "issued_on": (today - timedelta(days=30)).isoformat(),
        }
        for body in (certificate, health):
            (
                await client.post(
                    f"/v1/practitioners/{person['id']}/certificates", json=body, headers=operator
                )
            ).raise_for_status()
        for facility_id in facilities:
            hire = {
                "practitioner_id": person["id"],
                "facility_id": facility_id,
                "role": "infant_carer",
                "start_date": today.isoformat(),
            }
            for _ in range(200):  # the workforce learns of the approvals from the registry's events
                response = await client.post("/v1/employments", json=hire, headers=operator)
                if response.status_code != 404:
                    break
                await asyncio.sleep(0.05)
            response.raise_for_status()
        people.append((n, person["id"]))

    async def entries(facility_id: str) -> set[str]:
        record = (
            (await client.get(f"/v1/facilities/{facility_id}/credit-record", headers=reader))
            .raise_for_status()
            .json()
        )
        issued = "cradle.workforce.ban.issued"
        return {e["id"] for e in record["items"] if e.get("source_event_type") == issued}

    ended_ms, credit_ms = [], []
    for n, _person_id in people:
        seen_before = {f: await entries(f) for f in facilities}
        body = {
            "id_number": id_number(n),
            "name": f"员工{n}",
            "reason": "虐待被看护人罪，判决已生效",
            "decision_ref": f"(2026)沪0104刑初{n}号",
            "role": "abuser",
        }
        started = time.perf_counter()
        ban = await client.post("/v1/bans", json=body, headers=court)
        ended_ms.append((time.perf_counter() - started) * 1000)
        ban.raise_for_status()
        assert {x["facility_id"] for x in ban.json()["notifications"]} == set(facilities), ban.text
        waiting = set(facilities)
        while waiting:
            for facility_id in list(waiting):
                if len(await entries(facility_id)) > len(seen_before[facility_id]):
                    waiting.discard(facility_id)
            if waiting:
                if time.perf_counter() - started > 30:
                    raise SystemExit(f"ban {n}: no credit entry at {waiting} after 30 s")
                await asyncio.sleep(0.005)
        credit_ms.append((time.perf_counter() - started) * 1000)

    floor_ms = await floor(nats_url, args.bans)
    print()
    print(f"{args.bans} bans, each of a person employed at {args.facilities} facilities:")
    for label, values in (
        ("every employment ended (the POST's reply)", ended_ms),
        ("every facility's credit entry written", credit_ms),
        ("floor: JetStream publish → acked → consumed", floor_ms),
    ):
        print(
            f"  {label:<45} p50 {quantile(values, 0.5):7.1f} ms   p99 {quantile(values, 0.99):7.1f} ms   "
            f"mean {statistics.fmean(values):7.1f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bans", type=int, default=100)
    parser.add_argument("--facilities", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
