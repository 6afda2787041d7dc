"""`cradle seed-demo` beside a running `cradle up` (SQLite, embedded NATS), as a newcomer does it:
the consumers fill the workforce's and monitoring's facility projections from the registry's events
while the seeder writes the same rows, and the demo is seeded twice. Nothing fails, nothing is
doubled, the seeded city answers through the gateway (its projections included), and a later event
about a seeded facility reaches both projections."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cradle.layout import free_port
from tests.support import CHEAP_HASHING
from tests.test_cli import wait_for

SECRET = "seed-while-up-admin-secret-0123456789"
# The smallest city that still has every part: facilities, staff at them, cameras, families.
SMALL = [
    "--scale",
    "small",
    "--facilities",
    "30",
    "--practitioners",
    "150",
    "--cameras",
    "60",
    "--families",
    "20",
]
COUNTS = {
    "registry": "SELECT count(*) FROM facility",
    "workforce": "SELECT count(*) FROM practitioner",
    "monitoring": "SELECT count(*) FROM camera",
    "guidance": "SELECT count(*) FROM family",
}


def counts(data: Path) -> dict[str, int]:
    found = {}
    for name, query in COUNTS.items():
        with sqlite3.connect(data / f"{name}.db") as db:
            found[name] = db.execute(query).fetchone()[0]
    return found


def seed(cradle: Path, env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(
        [str(cradle), "seed-demo", *SMALL], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


def eventually(check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_seed_demo_while_up_runs_and_twice(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL") and k != "NATS_URL"}
    env |= {
        "CRADLE_DATA_DIR": str(data),
        "CRADLE_GATEWAY_PORT": str(port),
        "CRADLE_ADMIN_SECRET": SECRET,
        "CRADLE_LOG_FORMAT": "json",
        "GATEWAY_SECRET_HASHING": json.dumps(CHEAP_HASHING),
    }
    cradle = Path(sys.executable).parent / "cradle"
    log_path = tmp_path / "up.log"
    with log_path.open("w") as log:
        up = subprocess.Popen(
            [str(cradle), "up"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
    try:
        gateway = f"http://127.0.0.1:{port}"
        try:
            wait_for(gateway + "/healthz", up, timeout=180)  # a loaded 2-core machine
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log_path.read_text()[-3000:]}") from None
        # While it runs: the registry's outbox relay publishes each batch of facilities as it is
        # written, and the consumers write their projections beside the seeder's next steps.
        seed(cradle, env, tmp_path)
        first = counts(data)
        assert first["registry"] == 30 and first["workforce"] == 150 and first["monitoring"] == 60
        seed(cradle, env, tmp_path)
        assert counts(data) == first  # the same seed again: the same city, nothing added

        with sqlite3.connect(data / "monitoring.db") as db:
            facility_id, cameras = db.execute(
                "SELECT facility_id, count(*) FROM camera GROUP BY facility_id ORDER BY facility_id LIMIT 1"
            ).fetchone()
        with sqlite3.connect(data / "workforce.db") as db:
            projected = db.execute("SELECT count(*), min(version) FROM facility_projection").fetchone()
        assert projected == (30, 1)

        def token(client_id: str, secret: str) -> dict[str, str]:
            form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
            reply = httpx.post(gateway + "/v1/auth/token", data=form)
            return {"Authorization": f"Bearer {reply.json()['access_token']}"}

        operator = httpx.post(
            gateway + "/v1/admin/clients",
            headers=token("admin", SECRET),
            json={
                "name": "示范托育运营方",
                "kind": "operator",
                "facility_ids": [facility_id],
                "scopes": ["registry:read", "registry:write", "workforce:read", "monitoring:read"],
            },
        ).json()
        who = token(operator["client_id"], operator["client_secret"])
        facility = httpx.get(f"{gateway}/v1/facilities/{facility_id}", headers=who)
        assert facility.status_code == 200 and facility.json()["status"] == "approved", facility.text
        listed = httpx.get(
            f"{gateway}/v1/cameras", params={"facility_id": facility_id, "limit": 100}, headers=who
        )
        assert listed.status_code == 200 and len(listed.json()["items"]) == cameras, listed.text

        # The workforce's projection and seeded staff answer its staffing.
        staffing = httpx.get(f"{gateway}/v1/facilities/{facility_id}/staffing", headers=who)
        assert staffing.status_code == 200, staffing.text
        assert sum(c["carers"] for c in staffing.json()["classes"]) > 0

        # A later event about a seeded facility (the operator renames it: version 2) reaches both
        # projections over the rows the seeder or the consumers wrote.
        renamed = httpx.patch(
            f"{gateway}/v1/facilities/{facility_id}",
            headers={**who, "If-Match": facility.headers["ETag"]},
            json={"name": "改名后的示范托育园"},
        )
        assert renamed.status_code == 200, renamed.text

        def projected_names() -> tuple[str, str]:
            answer = httpx.get(f"{gateway}/v1/facilities/{facility_id}/staffing", headers=who).json()
            with sqlite3.connect(data / "monitoring.db") as db:
                (watched,) = db.execute("SELECT name FROM facility WHERE id = ?", (facility_id,)).fetchone()
            return answer["name"], watched

        assert eventually(lambda: projected_names() == ("改名后的示范托育园",) * 2)
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(timeout=60)
    output = log_path.read_text()
    assert code == 0, output[-3000:]
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert not [line for line in lines if line.get("event") == "event_dead_lettered"]
    assert not [line for line in lines if "UNIQUE constraint" in str(line.get("error", ""))]
