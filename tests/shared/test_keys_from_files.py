"""Personal-data keys kept in a secret store — the files compose mounts (`WORKFORCE_PII_KEYS_FILE`
…) — rotated as deploy/README.md says: the new key is added there and made active by its tested
block (`cradle keys rotate --secrets-dir`: the files replaced with their mode, the key never
printed), the service restarted, `cradle keys reencrypt` re-seals every row under it, `cradle keys
retire` checks no value still uses the old key (it may not rewrite the store, so it says to remove
it there), and the service reads every number with the new key alone."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from cradle.cli import app as cradle
from services.workforce.app import create_app as create_workforce
from services.workforce.config import WorkforceSettings
from shared.db import make_engine
from shared.identity import IDENTITY_HEADER, ClientKind, Identity, IdentitySigner
from shared.pii import new_key
from tests.support import DatabaseFactory, running
from tests.test_backup_restore import guide_block
from tests.workforce.conftest import new_id_number

EMPLOYER = Identity(client_id="operator-1", kind=ClientKind.operator, scopes=["workforce:write"])
POLICE = Identity(
    client_id="police", kind=ClientKind.bureau, bureau="POLICE", scopes=["workforce:read", "workforce:pii"]
)
FIRST = "k20261201-aaaaaa"


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


async def test_keys_from_files_are_reencrypted_and_retired_in_their_store(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    databases: DatabaseFactory,
    shared_nats_url: str,
    namespace: str,
    keys: dict[str, Any],
) -> None:
    url = await databases.fresh("workforce")
    store = tmp_path / "secrets"
    store.mkdir()
    keys_file, active_file = store / "workforce-pii-keys", store / "workforce-pii-active-key-id"
    old_key = new_key()
    keys_file.write_text(json.dumps({FIRST: old_key}) + "\n")
    active_file.write_text(FIRST + "\n")
    (store / "workforce-pii-hmac-key").write_text(new_key() + "\n")
    for secret in store.iterdir():  # as compose wants them (deploy/README.md, "Secrets")
        secret.chmod(0o444)
    store.chmod(0o700)
    for variable in ("WORKFORCE_PII_KEYS", "WORKFORCE_PII_ACTIVE_KEY_ID", "WORKFORCE_PII_HMAC_KEY"):
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv(f"{variable}_FILE", str(store / variable.lower().replace("_", "-")))
    monkeypatch.setenv("WORKFORCE_DATABASE_URL", url)
    monkeypatch.setenv("CRADLE_DATA_DIR", str(tmp_path / "data"))
    signer = IdentitySigner(keys["signing"])
    people: dict[str, str] = {}

    async def register_and_read(register: int) -> None:
        settings = WorkforceSettings(  # the keys from the files, as the container reads them
            nats_url=shared_nats_url,
            event_namespace=namespace,
            internal_verify_key=keys["verify"],
            log_level="WARNING",
        )
        app = create_workforce(settings)
        async with (
            running(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://workforce") as api,
        ):
            for _ in range(register):
                number = new_id_number()
                created = await api.post(
                    "/v1/practitioners",
                    json={"id_number": number, "name": "张三", "phone": "13812345678", "nationality": "CN"},
                    headers={IDENTITY_HEADER: signer.sign(EMPLOYER)},
                )
                assert created.status_code == 201, created.text
                people[created.json()["id"]] = number
            for practitioner_id, number in people.items():
                read = await api.get(
                    f"/v1/practitioners/{practitioner_id}",
                    headers={IDENTITY_HEADER: signer.sign(POLICE), "X-Purpose": "case 2026-123"},
                )
                assert read.status_code == 200, read.text
                assert (read.json()["id_number"], read.json()["phone"]) == (number, "13812345678")

    await register_and_read(register=2)
    assert await stored_key_ids(url) == {FIRST}

    # The new key goes into the store, made active, by the guide's own command; the service
    # restarted reads old and new alike.
    rotated = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        guide_block("rotate-pii-keys"),
        env=os.environ
        | {
            "CRADLE_SECRETS_DIR": str(store),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    printed = (await asyncio.wait_for(rotated.communicate(), 120))[0].decode()
    assert rotated.returncode == 0, printed
    second = active_file.read_text().strip()
    listed = json.loads(keys_file.read_text())
    assert second != FIRST and set(listed) == {FIRST, second} and listed[FIRST] == old_key
    assert second in printed and listed[second] not in printed and old_key not in printed
    assert {p.name: p.stat().st_mode & 0o777 for p in store.iterdir()} == {
        "workforce-pii-keys": 0o444,
        "workforce-pii-active-key-id": 0o444,
        "workforce-pii-hmac-key": 0o444,
    }
    await register_and_read(register=1)
    assert await stored_key_ids(url) == {FIRST, second}

    # `rotate` without the secret files' directory would write keys the service does not read:
    # refused, saying what to do instead.
    code, output = await asyncio.to_thread(cli, "keys", "rotate", "--service", "workforce")
    assert code == 2 and "WORKFORCE_PII_KEYS_FILE" in output and "reencrypt" in output
    code, output = await asyncio.to_thread(cli, "keys", "retire", FIRST, "--service", "workforce")
    assert code == 1 and "4 values are still encrypted" in output, output

    code, output = await asyncio.to_thread(cli, "keys", "reencrypt", "--service", "workforce")
    assert code == 0 and f"4 values re-encrypted under {second}" in output, output
    assert await stored_key_ids(url) == {second}

    code, output = await asyncio.to_thread(cli, "keys", "retire", second, "--service", "workforce")
    assert code == 1 and "active" in output
    code, output = await asyncio.to_thread(cli, "keys", "retire", FIRST, "--service", "workforce")
    assert code == 0 and "remove it from WORKFORCE_PII_KEYS_FILE" in output, output
    assert set(json.loads(keys_file.read_text())) == {FIRST, second}  # the store is the operator's

    keys_file.chmod(0o600)
    keys_file.write_text(json.dumps({second: listed[second]}) + "\n")  # removed there: all still read
    await register_and_read(register=0)
