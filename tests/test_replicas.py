"""`cradle up --replicas 2` as an operator runs it, in a subprocess: on PostgreSQL, two processes per
service and two gateways, each gateway balancing over both replicas, the embedded NATS a three-node
cluster; on SQLite, refused in one line before anything starts."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from cradle.layout import free_port
from cradle.services import PROCESSES
from tests.support import CHEAP_HASHING, PG_ADMIN_URL, DatabaseFactory, small_pool_env

CRADLE = Path(sys.executable).parent / "cradle"
SECRET = "replicas-test-admin-secret-0123456789"


def clean_env(data: Path, port: int, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_DATABASE_URL", "_PII_KEYS", "_PII_HMAC_KEY", "_PII_ACTIVE_KEY_ID"))
        and k not in ("NATS_URL", "NATS_ADMIN_CREDS", "CRADLE_GATEWAY_PORT", "CRADLE_REPLICAS")
    }
    return env | {
        "CRADLE_DATA_DIR": str(data),
        "CRADLE_GATEWAY_PORT": str(port),
        "CRADLE_ADMIN_SECRET": SECRET,
        "GATEWAY_SECRET_HASHING": json.dumps(CHEAP_HASHING),
        "CRADLE_LOG_FORMAT": "json",
        **extra,
    }


@pytest.mark.parametrize("how", ["flag", "setting"])
def test_replicas_on_sqlite_are_refused_in_one_line(tmp_path: Path, how: str) -> None:
    port = free_port()
    env = clean_env(tmp_path / "data", port, **({"CRADLE_REPLICAS": "2"} if how == "setting" else {}))
    args = ["up", "--replicas", "2"] if how == "flag" else ["up"]
    result = subprocess.run(
        [str(CRADLE), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "CRADLE_REPLICAS: 2 replicas need PostgreSQL, but GATEWAY_DATABASE_URL is SQLite "
        "(one writer at a time); set every <SERVICE>_DATABASE_URL to PostgreSQL, or run one replica"
    ]
    assert not (tmp_path / "data" / "gateway.db").exists()  # nothing was started nor migrated


async def _databases(names: list[str]) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        for name in names:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _wait(url: str, process: subprocess.Popen[str], log: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "cradle up exited early:\n" + log.read_text()[-3000:]
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} not up within {timeout}s:\n" + log.read_text()[-3000:])


def test_two_replicas_of_everything_on_postgresql(
    tmp_path: Path, db_factories: dict[str, DatabaseFactory]
) -> None:
    if "postgres" not in db_factories:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432")
    tag = uuid.uuid4().hex[:8]
    names = {process: f"replicas_{tag}_{process}" for process in PROCESSES}
    asyncio.run(_databases(list(names.values())))
    # Dropped with the module's other databases, on a thread of their own once it ends: a DROP
    # DATABASE waits for a checkpoint, and with another suite writing beside this one, the drops
    # made here took the rest of the test's 300 s.
    db_factories["postgres"].created.extend(names.values())
    server = PG_ADMIN_URL.rsplit("/", 1)[0]
    port = free_port(count=2)  # the second gateway takes the next port
    env = clean_env(
        tmp_path / "data",
        port,
        **{f"{p.upper()}_DATABASE_URL": f"{server}/{database}" for p, database in names.items()},
        # Twelve processes: two connections kept each (production's ten would be 120 at rest, past
        # PostgreSQL's 100 with another suite beside this one).
        **small_pool_env(*names),
    )
    log = tmp_path / "up.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(CRADLE), "up", "--replicas", "2"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    gateways = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]
    try:
        for gateway in gateways:
            _wait(gateway + "/healthz", process, log)
        deadline = time.monotonic() + 240
        while "Cradle is" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)

        def token(gateway: str, client_id: str, secret: str) -> str:
            form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
            return str(httpx.post(gateway + "/v1/auth/token", data=form).json()["access_token"])

        admin = {"Authorization": f"Bearer {token(gateways[0], 'admin', SECRET)}"}
        operator = httpx.post(
            gateways[0] + "/v1/admin/clients",
            headers=admin,
            json={
                "name": "徐汇区托育服务中心",
                "kind": "operator",
                "scopes": ["registry:read", "registry:write"],
            },
        ).json()
        # Written through one gateway, read back through the other (a token of either gateway works).
        auth = {
            "Authorization": f"Bearer {token(gateways[1], operator['client_id'], operator['client_secret'])}"
        }
        ids = []
        for index in range(4):
            created = httpx.post(
                gateways[index % 2] + "/v1/facilities",
                headers=auth,
                json={
                    "name": f"徐汇区社区托育点{index}",
                    "kind": "community_point",
                    "inclusive": True,
                    "town_code": "310104003",
                    "address": f"漕溪北路 {index + 1} 号",
                    "lat": 31.19,
                    "lon": 121.43,
                    "operator_name": "徐汇区",
                    "service_modes": ["full_day"],
                    "capacity": {"infant": 0, "toddler": 10, "preschool": 10},
                },
            )
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        for index, facility_id in enumerate(ids):
            read = httpx.get(f"{gateways[(index + 1) % 2]}/v1/facilities/{facility_id}", headers=auth)
            assert read.status_code == 200, read.text
        listed = httpx.get(gateways[1] + "/v1/facilities", headers=auth, params={"limit": 10}).json()
        assert sorted(item["id"] for item in listed["items"]) == sorted(ids)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)
    output = log.read_text()
    assert code == 0, output[-3000:]
    # Two of each service, two gateways, three NATS nodes routed into one cluster.
    for label in ("registry-1", "registry-2", "delivery-2", "gateway-1", "gateway-2", "nats-3"):
        assert re.search(rf"^{label}\s+\|", output, re.MULTILINE), label
    urls = re.search(r"using (nats://\S+)", output)
    assert urls is not None and urls.group(1).count("nats://") == 3
    assert all((tmp_path / "data" / "nats" / f"node-{n}" / "jetstream").is_dir() for n in (1, 2, 3))
