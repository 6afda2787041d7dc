"""`cradle up` as a newcomer runs it: real processes, an embedded NATS, SQLite under the data dir,
started from a directory that is not the repository, and stopped cleanly by SIGTERM."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from cradle.layout import free_port
from tests.support import CHEAP_HASHING

SECRET = "cli-test-admin-secret-0123456789"


def wait_for(url: str, process: subprocess.Popen[str], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "cradle up exited early"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not up within {timeout}s")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class TraceReceiver(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP collector's traces endpoint: keeps each export request's spans."""

    received: ClassVar[list[ExportTraceServiceRequest]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            self.received.append(request)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def spans_by_service(requests: list[ExportTraceServiceRequest]) -> dict[str, list[tuple[bytes, str]]]:
    found: dict[str, list[tuple[bytes, str]]] = {}
    for request in requests:
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            spans = found.setdefault(attributes.get("service.name", "?"), [])
            for scope in resource_spans.scope_spans:
                spans.extend((span.trace_id, span.name) for span in scope.spans)
    return found


def test_cradle_up_serves_the_slice_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    # One setting turns the traces' export on: every process sends its spans to this collector.
    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TraceReceiver)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL") and k != "NATS_URL"}
    env |= {
        "CRADLE_DATA_DIR": str(tmp_path / "data"),
        "CRADLE_GATEWAY_PORT": str(port),
        "CRADLE_ADMIN_SECRET": SECRET,
        "CRADLE_LOG_FORMAT": "json",
        # The admin's secret is hashed at start-up and verified per token: production's argon2 cost
        # is pinned by tests/gateway/test_hashing.py, not paid here.
        "GATEWAY_SECRET_HASHING": json.dumps(CHEAP_HASHING),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_address[1]}",
    }
    log_path = tmp_path / "up.log"
    cradle = Path(sys.executable).parent / "cradle"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(cradle), "up"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
    try:
        gateway = f"http://127.0.0.1:{port}"
        wait_for(gateway + "/healthz", process)

        def token(client_id: str, secret: str) -> str:
            form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
            return httpx.post(gateway + "/v1/auth/token", data=form).json()["access_token"]

        # The admin client registers an operator, which applies for its facility (admin acts for nobody).
        operator = httpx.post(
            gateway + "/v1/admin/clients",
            headers={"Authorization": f"Bearer {token('admin', SECRET)}"},
            json={
                "name": "静安区社区服务中心",
                "kind": "operator",
                "scopes": ["registry:read", "registry:write"],
            },
        ).json()
        created = httpx.post(
            gateway + "/v1/facilities",
            headers={"Authorization": f"Bearer {token(operator['client_id'], operator['client_secret'])}"},
            json={
                "name": "静安区社区托育点",
                "kind": "community_point",
                "inclusive": True,
                "town_code": "310106006",
                "address": "南京西路 1 号",
                "lat": 31.23,
                "lon": 121.45,
                "operator_name": "静安区",
                "service_modes": ["full_day"],
                "capacity": {"infant": 0, "toddler": 15, "preschool": 20},
            },
        )
        assert created.status_code == 201, created.text
        facility_id = created.json()["id"]

        workforce_db = tmp_path / "data" / "workforce.db"
        deadline = time.monotonic() + 20
        found: list[tuple[str]] = []
        while time.monotonic() < deadline and not found:
            with sqlite3.connect(workforce_db) as db:
                found = db.execute(
                    "SELECT name FROM facility_projection WHERE facility_id = ?", (facility_id,)
                ).fetchall()
            time.sleep(0.2)
        assert found == [("静安区社区托育点",)]
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        collector.shutdown()
    output = log_path.read_text()
    assert code == 0, output[-3000:]
    assert "Cradle is up" in output
    # The processes flushed their spans as they stopped: the facility's POST is one trace from the
    # gateway into the registry, and the workforce handled its event.
    spans = spans_by_service(TraceReceiver.received)
    assert {"gateway", "registry", "workforce"} <= set(spans), sorted(spans)
    assert {trace for trace, _ in spans["gateway"]} & {trace for trace, _ in spans["registry"]}
    nats_port = int(re.search(r"using nats://127\.0\.0\.1:(\d+)", output).group(1))
    assert nats_port != 4222  # never the machine's NATS
    assert not port_open(nats_port) and not port_open(port)
    assert (tmp_path / "data" / "nats" / "jetstream").is_dir()
    # Databases with their -wal/-shm, the NATS store, key files: nothing readable by anyone else.
    data = tmp_path / "data"
    created = [path for path in data.rglob("*") if path.is_file()]
    assert {p.name for p in created} >= {"gateway.db", "gateway_pii_keys.json", "pii_keys.json"}
    assert any("jetstream" in p.parts for p in created)
    opened = [f"{p.relative_to(data)} {p.stat().st_mode & 0o777:o}" for p in [data, *data.rglob("*")]]
    assert not [p for p in opened if int(p.rsplit(" ", 1)[1], 8) & 0o077], opened
