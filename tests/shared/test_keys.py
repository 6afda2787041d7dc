"""Personal-data keys of an embedded deployment (<data>/keys/): a lost key file is a refusal to
start that names the missing key, never a silent new key under the same id; `cradle keys rotate`
re-encrypts every row and the data stays readable; `cradle keys retire` waits until no row uses
the key."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from cradle.cli import app as cradle
from cradle.layout import PiiKeys, load_or_create_keys, load_pii_keys, save_pii_keys
from cradle.services import PERSONAL_DATA
from services.workforce.app import create_app as create_workforce
from services.workforce.config import WorkforceSettings
from shared.db import make_engine
from shared.identity import IDENTITY_HEADER, ClientKind, Identity, IdentitySigner
from shared.pii import new_key
from shared.pii_keys import LostKeys
from tests.conftest import service_settings, start_stack
from tests.support import DatabaseFactory, eventually, running
from tests.workforce.conftest import new_id_number

ROOT = Path(__file__).resolve().parents[2]
KEY_ID = re.compile(r"k\d{8}-[0-9a-f]{6}")
EMPLOYER = Identity(client_id="operator-1", kind=ClientKind.operator, scopes=["workforce:write"])
POLICE = Identity(
    client_id="police", kind=ClientKind.bureau, bureau="POLICE", scopes=["workforce:read", "workforce:pii"]
)


@pytest.fixture
async def deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, databases: DatabaseFactory
) -> dict[str, str]:
    """A data directory of its own, the PII services' databases built by their migrations."""
    monkeypatch.setenv("CRADLE_DATA_DIR", str(tmp_path))
    env = {"CRADLE_DATA_DIR": str(tmp_path)}
    for service in PERSONAL_DATA:
        monkeypatch.delenv(f"{service.upper()}_PII_KEYS", raising=False)
        env[f"{service.upper()}_DATABASE_URL"] = await databases.fresh(service)
        monkeypatch.setenv(f"{service.upper()}_DATABASE_URL", env[f"{service.upper()}_DATABASE_URL"])
    return env


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cradle, list(args))
    return result.exit_code, result.output


async def stored_key_ids(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT id_number_key_id, phone_key_id FROM practitioner"))
            return {kid for row in rows for kid in row}
    finally:
        await engine.dispose()


async def test_a_lost_key_file_stops_start_up_and_a_rotation_keeps_every_number_readable(
    deployment: dict[str, str],
    databases: DatabaseFactory,
    shared_nats_url: str,
    namespace: str,
    keys: dict[str, Any],
) -> None:
    base = Path(deployment["CRADLE_DATA_DIR"])
    made = load_or_create_keys(base)
    first = made.pii["workforce"].active_key_id
    assert KEY_ID.fullmatch(first) and KEY_ID.fullmatch(made.pii["guidance"].active_key_id)
    assert first != made.pii["guidance"].active_key_id

    signer = IdentitySigner(keys["signing"])
    people: dict[str, str] = {}

    async def register_and_read(pii: dict[str, Any], *, register: int) -> None:
        async with start_stack(
            databases=databases,
            nats_url=shared_nats_url,
            namespace=namespace,
            keys=keys,
            services=("workforce",),
            overrides={"workforce": pii | {"database_url": deployment["WORKFORCE_DATABASE_URL"]}},
        ) as stack:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=stack.workforce), base_url="http://workforce"
            ) as direct:
                for _ in range(register):
                    number = new_id_number()
                    created = await direct.post(
                        "/v1/practitioners",
                        json={
                            "id_number": number,
                            "name": "张三",
                            "phone": "13812345678",
                            "nationality": "CN",
                        },
                        headers={IDENTITY_HEADER: signer.sign(EMPLOYER)},
                    )
                    assert created.status_code == 201, created.text
                    people[created.json()["id"]] = number
                for practitioner_id, number in people.items():
                    read = await direct.get(
                        f"/v1/practitioners/{practitioner_id}",
                        headers={IDENTITY_HEADER: signer.sign(POLICE), "X-Purpose": "case 2026-123"},
                    )
                    assert read.status_code == 200, read.text
                    assert (read.json()["id_number"], read.json()["phone"]) == (number, "13812345678")

    await register_and_read(made.pii["workforce"].settings(), register=3)
    assert await stored_key_ids(deployment["WORKFORCE_DATABASE_URL"]) == {first}

    # The key file is lost: `cradle up` (which loads the keys first) refuses, names the key, makes none.
    key_file = base / "keys" / PERSONAL_DATA["workforce"].pii_key_file
    saved = key_file.read_text()
    key_file.unlink()
    with pytest.raises(LostKeys) as refused:
        load_or_create_keys(base)
    line = str(refused.value)
    assert first in line and "deploy/README.md" in line and "\n" not in line
    assert not key_file.exists()

    # The service itself refuses too, given any other key, before it starts anything.
    stranger = service_settings(
        WorkforceSettings,
        url=deployment["WORKFORCE_DATABASE_URL"],
        nats_url=shared_nats_url,
        namespace=namespace,
        keys=keys,
        pii_keys={"k20260101-000000": new_key()},
        pii_active_key_id="k20260101-000000",
    )
    with pytest.raises(LostKeys, match=first):
        async with running(create_workforce(stranger)):
            pass

    key_file.write_text(saved)  # restored from the backup
    assert load_or_create_keys(base).pii["workforce"].active_key_id == first

    # The active key is never retired; a rotation re-encrypts every row under a new one.
    code, output = await asyncio.to_thread(cli, "keys", "retire", first)
    assert code == 1 and "active" in output
    code, output = await asyncio.to_thread(cli, "keys", "rotate", "--service", "workforce")
    assert code == 0, output
    rotated = load_pii_keys("workforce", base / "keys")
    second = rotated.active_key_id
    assert KEY_ID.fullmatch(second) and second != first and set(rotated.keys) == {first, second}
    assert "6 values re-encrypted" in output  # three ID numbers and three phone numbers
    assert await stored_key_ids(deployment["WORKFORCE_DATABASE_URL"]) == {second}

    # A rotation interrupted after its new key was made active: the old key still holds every row,
    # so retiring it is refused until `reencrypt` has finished the job (once: it is idempotent).
    third = "k20991231-000000"
    save_pii_keys(
        "workforce", base / "keys", PiiKeys(rotated.keys | {third: new_key()}, third, rotated.hmac_key)
    )
    code, output = await asyncio.to_thread(cli, "keys", "retire", second)
    assert code == 1 and "6 values are still encrypted" in output
    code, output = await asyncio.to_thread(cli, "keys", "reencrypt", "--service", "workforce")
    assert code == 0 and "6 values re-encrypted" in output, output
    code, output = await asyncio.to_thread(cli, "keys", "reencrypt", "--service", "workforce")
    assert code == 0 and "0 values re-encrypted" in output
    assert await stored_key_ids(deployment["WORKFORCE_DATABASE_URL"]) == {third}
    for old in (first, second):
        code, output = await asyncio.to_thread(cli, "keys", "retire", old)
        assert code == 0, output
    assert set(json.loads(key_file.read_text())["keys"]) == {third}

    # Every number still reads through the API, under the new key alone; new rows use it too.
    await register_and_read(load_pii_keys("workforce", base / "keys").settings(), register=1)
    assert await stored_key_ids(deployment["WORKFORCE_DATABASE_URL"]) == {third}


async def test_under_uvicorn_a_missing_key_is_one_line_and_no_traceback(
    deployment: dict[str, str], keys: dict[str, Any], databases: DatabaseFactory
) -> None:
    url = deployment["WORKFORCE_DATABASE_URL"]
    engine = make_engine(url)
    async with engine.begin() as connection:  # a row sealed under a key this process will not have
        await connection.execute(text("INSERT INTO person (id_hash, created_at) VALUES ('h1', '2026-01-01')"))
        await connection.execute(
            text(
                "INSERT INTO practitioner (id, id_hash, id_number_key_id, id_number_encrypted, "
                "id_number_masked, name, nationality, registered_by, version, created_at, updated_at) "
                "VALUES ('p1', 'h1', 'k20250101-abcdef', 'x', '310***', 'n', 'CN', 'admin', 1, "
                "'2026-01-01', '2026-01-01')"
            )
        )
    await engine.dispose()
    env = {
        **os.environ,
        "WORKFORCE_DATABASE_URL": url,
        "WORKFORCE_PII_KEYS": json.dumps({"k20260101-000000": new_key()}),
        "WORKFORCE_PII_ACTIVE_KEY_ID": "k20260101-000000",
        "WORKFORCE_PII_HMAC_KEY": new_key(),
        "CRADLE_INTERNAL_VERIFY_KEY": keys["verify"],
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "services.workforce.app:create_app",
        "--port",
        "0",
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = (await asyncio.wait_for(process.communicate(), 60))[0].decode()
    assert process.returncode != 0
    assert "k20250101-abcdef" in output and "deploy/README.md" in output
    assert "Traceback" not in output, output


async def test_a_lost_key_found_once_the_database_answers_refuses_every_request(
    db_factories: dict[str, DatabaseFactory], shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> None:
    """A database down at start-up does not stop the start (requests are 503s, as in any outage);
    the keys are checked as soon as it answers, and a lost one then refuses everything."""
    written = await db_factories["sqlite"].fresh("workforce")
    signer = IdentitySigner(keys["signing"])

    def workforce(url: str, key_id: str) -> Any:
        pii = {"pii_keys": {key_id: new_key()}, "pii_active_key_id": key_id}
        return create_workforce(
            service_settings(
                WorkforceSettings, url=url, nats_url=shared_nats_url, namespace=namespace, keys=keys, **pii
            )
        )

    first = workforce(written, "k20261203-aaaaaa")
    async with (
        running(first),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://w") as c,
    ):
        body = {"id_number": new_id_number(), "name": "张三", "phone": "13812345678", "nationality": "CN"}
        created = await c.post(
            "/v1/practitioners", json=body, headers={IDENTITY_HEADER: signer.sign(EMPLOYER)}
        )
        assert created.status_code == 201, created.text

    later = Path(make_url(written).database or "").parent / "not-yet" / "workforce.db"
    second = workforce(f"sqlite+aiosqlite:///{later}", "k20261203-bbbbbb")  # the first key lost
    async with (
        running(second),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://w") as c,
    ):
        later.parent.mkdir()
        shutil.copyfile(make_url(written).database or "", later)

        async def refused() -> bool:
            reply = await c.get("/v1/practitioners", headers={IDENTITY_HEADER: signer.sign(POLICE)})
            return reply.status_code == 503 and reply.json()["title"] == "Personal-data keys missing"

        await eventually(refused, interval=0.5)
        reply = await c.get("/v1/practitioners", headers={IDENTITY_HEADER: signer.sign(POLICE)})
        assert "k20261203-aaaaaa" in reply.json()["detail"]
        assert (await c.get("/healthz")).status_code == 200
