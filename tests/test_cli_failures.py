"""`cradle` as an operator meets it when something is wrong: every misconfiguration is one line on
stderr naming the setting or the fix, a non-zero exit and no traceback, before anything starts; an
unreachable NATS is not a misconfiguration but a degraded start, said as such. Each case runs the
real `cradle` in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cradle.layout import free_port
from cradle.preflight import Misconfigured, bind_port
from cradle.services import PROCESSES
from tests.support import CHEAP_HASHING, PG_ADMIN_URL, postgres_reachable

CRADLE = Path(sys.executable).parent / "cradle"


def base_env(data: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_DATABASE_URL", "_PII_KEYS", "_PII_HMAC_KEY", "_PII_ACTIVE_KEY_ID"))
        and k not in ("NATS_URL", "NATS_ADMIN_CREDS", "CRADLE_GATEWAY_PORT")
    }
    return env | {
        "CRADLE_DATA_DIR": str(data),
        "CRADLE_GATEWAY_PORT": str(free_port()),
        "GATEWAY_SECRET_HASHING": json.dumps(CHEAP_HASHING),
        "CRADLE_LOG_FORMAT": "json",
        **extra,
    }


def cradle(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CRADLE), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The failure's single line, after checking it is a failure told in one line."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Cradle is up" not in result.stdout
    return lines[0]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_an_unreachable_database_names_its_setting(data: Path, tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    env = base_env(data, WORKFORCE_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed}/workforce")
    line = one_line(cradle("up", env=env, cwd=tmp_path))
    assert line.startswith("WORKFORCE_DATABASE_URL: cannot reach postgresql://postgres@127.0.0.1:")
    assert not (data / "gateway.db").exists()  # nothing migrated, nothing started


def test_a_database_url_of_another_kind_names_its_setting(data: Path, tmp_path: Path) -> None:
    line = one_line(cradle("up", env=base_env(data, REGISTRY_DATABASE_URL="mysql://u@db/x"), cwd=tmp_path))
    assert line == (
        "REGISTRY_DATABASE_URL: unsupported database 'mysql'; "
        "use postgresql://… (PostgreSQL) or sqlite:///… (SQLite)"
    )
    garbled = one_line(cradle("up", env=base_env(data, GUIDANCE_DATABASE_URL="not a url"), cwd=tmp_path))
    assert garbled.startswith("GUIDANCE_DATABASE_URL: not a database URL")


def test_refused_credentials_name_the_setting_and_the_server_s_reason(data: Path, tmp_path: Path) -> None:
    if not asyncio.run(postgres_reachable()):
        pytest.skip("no PostgreSQL at 127.0.0.1:5432")
    server = PG_ADMIN_URL.split("@", 1)[1].rsplit("/", 1)[0]
    env = base_env(data, GATEWAY_DATABASE_URL=f"postgresql://no_such_role_here:pw@{server}/postgres")
    line = one_line(cradle("up", env=env, cwd=tmp_path))
    assert line.startswith("GATEWAY_DATABASE_URL: postgresql://no_such_role_here:***@")
    assert line.endswith('refused the connection: role "no_such_role_here" does not exist')
    assert ":pw@" not in line  # never the password


def test_a_malformed_key_file_names_the_file(data: Path, tmp_path: Path) -> None:
    key_file = data / "keys" / PROCESSES["guidance"].pii_key_file  # type: ignore[operator]
    key_file.parent.mkdir(parents=True)
    key_file.write_text('{"active": "k1", "keys": {"k1": "AAAA"}, "hmac": "')
    line = one_line(cradle("up", env=base_env(data), cwd=tmp_path))
    assert line == (
        f"{key_file}: not a key file (JSON with active, keys and hmac); "
        "restore it from your key backup (deploy/README.md, 'Personal-data keys')"
    )
    key_file.write_text(json.dumps({"active": "k1", "keys": {"k1": "AAAA"}, "hmac": "AAAA"}))
    assert one_line(cradle("up", env=base_env(data), cwd=tmp_path)) == (
        f"{key_file}: key 'k1' must decode to 32 bytes, not 3"
    )
    assert key_file.read_text().startswith('{"active": "k1"')  # never replaced by a new key


def test_a_malformed_key_from_the_environment_names_the_variable(data: Path, tmp_path: Path) -> None:
    env = base_env(data, WORKFORCE_PII_KEYS="k1=secret")
    assert one_line(cradle("up", env=env, cwd=tmp_path)) == (
        'WORKFORCE_PII_KEYS: not JSON; give {"<key id>": "<base64 of 32 bytes>", …}'
    )
    env = base_env(data, GATEWAY_PII_KEYS='{"k1": "c2hvcnQ="}', GATEWAY_PII_ACTIVE_KEY_ID="k1")
    line = one_line(cradle("up", env=env, cwd=tmp_path))
    assert line == "GATEWAY_PII_KEYS: key 'k1' must decode to 32 bytes, not 5"


def test_an_invalid_setting_names_its_variable_and_what_is_wrong(data: Path, tmp_path: Path) -> None:
    line = one_line(cradle("up", env=base_env(data, REGISTRY_DB_POOL_SIZE="lots"), cwd=tmp_path))
    assert line == (
        "REGISTRY_DB_POOL_SIZE: Input should be a valid integer, unable to parse string as an integer "
        "(got 'lots')"
    )
    line = one_line(cradle("up", env=base_env(data, GATEWAY_TOKEN_TTL_SECONDS="5"), cwd=tmp_path))
    assert line == "GATEWAY_TOKEN_TTL_SECONDS: Input should be greater than or equal to 60 (got '5')"
    line = one_line(cradle("up", env=base_env(data, CRADLE_GATEWAY_PORT="eighty"), cwd=tmp_path))
    assert line.startswith("CRADLE_GATEWAY_PORT: Input should be a valid integer")


def test_a_port_in_use_names_the_setting(data: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line(cradle("up", env=base_env(data, CRADLE_GATEWAY_PORT=str(port)), cwd=tmp_path))
    assert line == (
        f"CRADLE_GATEWAY_PORT: 127.0.0.1:{port} is in use; "
        "stop what listens there or set CRADLE_GATEWAY_PORT to a free port"
    )


# Holds the data directory's lock as `cradle up` takes it (the lock object kept: its file closed
# would release it), until the process ends.
HOLD_THE_LOCK = (
    "import sys; from pathlib import Path; from cradle.preflight import DataDirLock; "
    "lock = DataDirLock(Path(sys.argv[1])); lock.acquire(); print('held', flush=True); sys.stdin.read()"
)


def test_a_second_cradle_up_on_the_same_data_dir_names_the_holder(data: Path, tmp_path: Path) -> None:
    """The lock alone, held by another process (a running `cradle up` holding it is in the degraded
    test below); killed with SIGKILL, it leaves no stale lock behind."""
    data.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(data)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        # A bad setting too, checked after the lock: were the lock not seen, nothing would start.
        line = one_line(cradle("up", env=base_env(data, REGISTRY_DB_POOL_SIZE="lots"), cwd=tmp_path))
        assert line == (
            f"CRADLE_DATA_DIR: {data.resolve()} is in use by another `cradle up` (pid {holder.pid}); "
            "stop it, or set CRADLE_DATA_DIR to another directory"
        )
        assert not (data / "gateway.db").exists()  # nothing migrated, nothing started
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # The kernel dropped the lock with the killed holder: the next `cradle up` gets past it, to the
    # bad setting.
    after = cradle("up", env=base_env(data, REGISTRY_DB_POOL_SIZE="lots"), cwd=tmp_path)
    assert one_line(after).startswith("REGISTRY_DB_POOL_SIZE:")


def test_version_and_the_settings_up_reads(tmp_path: Path) -> None:
    version = cradle("--version", env=base_env(tmp_path), cwd=tmp_path)
    assert version.returncode == 0
    assert re.fullmatch(r"cradle \d+\.\d+\.\d+\S*\n", version.stdout)
    shown = cradle("up", "--help", env=base_env(tmp_path) | {"COLUMNS": "200"}, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    # Generated from the settings classes: every process's variables, with a line each.
    for variable in ("CRADLE_DATA_DIR", "NATS_URL", "CRADLE_GATEWAY_PORT", "GATEWAY_TOKEN_TTL_SECONDS"):
        assert re.search(rf"^ *{variable} +\S", shown.stdout, re.MULTILINE), variable
    for name in PROCESSES:
        assert f"{name.upper()}_DATABASE_URL" in shown.stdout
    assert re.search(r"GATEWAY_TOKEN_TTL_SECONDS +int, default 900", shown.stdout)


@pytest.fixture
def degraded_up(data: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, dict[str, str]]]:
    """`cradle up` against a NATS that does not answer (nothing listens on its port)."""
    env = base_env(data, NATS_URL=f"nats://127.0.0.1:{free_port()}")
    log = tmp_path / "up.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(CRADLE), "up"], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    try:
        yield process, log, env
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def wait_for_text(log: Path, process: subprocess.Popen[str], pattern: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if re.search(pattern, text, re.MULTILINE):
            return text
        assert process.poll() is None, text[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"{pattern!r} never appeared:\n{log.read_text()[-3000:]}")


def test_an_unreachable_nats_starts_degraded_and_says_so(
    degraded_up: tuple[subprocess.Popen[str], Path, dict[str, str]], data: Path, tmp_path: Path
) -> None:
    process, log, env = degraded_up
    output = wait_for_text(log, process, r"Cradle is running, degraded[\s\S]*admin id")
    assert "Cradle is up" not in output
    assert "Traceback" not in output
    # What is degraded, process by process, from each one's readiness.
    for name in PROCESSES:
        assert re.search(rf"^degraded +{name} +nats: ", output, re.MULTILINE), name

    # A second `cradle up` on the same data directory stops at once, naming the holder.
    second = cradle("up", env=env | {"CRADLE_GATEWAY_PORT": str(free_port())}, cwd=tmp_path)
    assert one_line(second) == (
        f"CRADLE_DATA_DIR: {data.resolve()} is in use by another `cradle up` (pid {process.pid}); "
        "stop it, or set CRADLE_DATA_DIR to another directory"
    )

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    # The lock went with the process: the next one gets past it (and stops at its own bad setting).
    third = cradle("up", env=env | {"REGISTRY_DB_POOL_SIZE": "lots"}, cwd=tmp_path)
    assert one_line(third).startswith("REGISTRY_DB_POOL_SIZE:")


def test_migrate_names_an_unreachable_nats(data: Path, tmp_path: Path) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    line = one_line(cradle("migrate", "registry", env=base_env(data, NATS_URL=url), cwd=tmp_path))
    assert line.startswith(f"NATS_URL: cannot provision the streams on {url} (NoServersError")


def test_the_other_commands_name_a_database_they_cannot_use(data: Path, tmp_path: Path) -> None:
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/gateway"
    line = one_line(cradle("bootstrap-admin", env=base_env(data, GATEWAY_DATABASE_URL=closed), cwd=tmp_path))
    assert line.startswith("GATEWAY_DATABASE_URL: cannot reach postgresql://postgres@127.0.0.1:")
    missing = tmp_path / "no-such-directory" / "registry.db"
    env = base_env(data, REGISTRY_DATABASE_URL=f"sqlite:///{missing}")
    line = one_line(cradle("seed-demo", "--scale", "small", env=env, cwd=tmp_path))
    assert line == f"REGISTRY_DATABASE_URL: the directory of {missing} does not exist"


def test_a_command_that_needs_the_bus_names_an_unreachable_one(data: Path, tmp_path: Path) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    line = one_line(cradle("dlq", "list", env=base_env(data, NATS_URL=url), cwd=tmp_path))
    assert line == (
        f"NATS_URL: {url}: nats: no servers available for connection; "
        "check NATS_URL, the .creds given and NATS_TLS_CA"
    )


def test_the_gateway_port_is_held_from_its_check_until_the_gateway_serves_on_it() -> None:
    # cradle up binds CRADLE_GATEWAY_PORT when it checks it and hands that socket to the gateway:
    # nothing else can take the port while NATS, the migrations and the services start.
    held = bind_port("127.0.0.1", 0, variable="CRADLE_GATEWAY_PORT")
    port = held.getsockname()[1]
    try:
        assert held.get_inheritable()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # already listening: a caller waits in the backlog instead of being refused
        with pytest.raises(Misconfigured, match=rf"CRADLE_GATEWAY_PORT: 127.0.0.1:{port} is in use"):
            bind_port("127.0.0.1", port, variable="CRADLE_GATEWAY_PORT")
    finally:
        held.close()
