"""Backup and restore on PostgreSQL, by deploy/README.md's own commands: the blocks it marks
`<!-- tested: … -->` are read from the document and run here as they are written, with the
PostgreSQL tools on this machine standing in for the postgres container (`PG` empty), so the
procedure and the document cannot drift apart.

The databases and their least-privilege roles come from deploy/postgres/init-databases.sh (what the
postgres container runs on its first start), the migrations run as each service's role, and the
workforce service reads every secret from a file (`<VAR>_FILE`) as it does in compose. A
practitioner registered through the API (an encrypted ID number) is dumped, the database dropped,
the keys lost and restored from their own backup, the database restored, and the number read back
decrypted; without its key the service refuses to start."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic_settings import SettingsError
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from cradle.cli import app as cradle
from cradle.nats import init_trust
from services.workforce.app import create_app as create_workforce
from services.workforce.config import WorkforceSettings
from shared.identity import IDENTITY_HEADER, ClientKind, Identity, IdentitySigner
from shared.pii import new_key
from shared.pii_keys import LostKeys
from tests.support import PG_ADMIN_URL, running
from tests.workforce.conftest import new_id_number

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "deploy" / "README.md"
INIT_DATABASES = ROOT / "deploy" / "postgres" / "init-databases.sh"
SERVICES = ("gateway", "registry", "workforce", "monitoring", "guidance")
EMPLOYER = Identity(client_id="operator-1", kind=ClientKind.operator, scopes=["workforce:write"])
POLICE = Identity(
    client_id="police", kind=ClientKind.bureau, bureau="POLICE", scopes=["workforce:read", "workforce:pii"]
)


def guide_block(name: str) -> str:
    """The shell block deploy/README.md marks `<!-- tested: name … -->`, as written there."""
    found = re.search(
        rf"<!-- tested: {re.escape(name)}\b[^>]*-->\s*\n(\s*)```sh\n(.*?)\n\s*```", GUIDE.read_text(), re.S
    )
    assert found, f"deploy/README.md has no block marked tested: {name}"
    return textwrap.dedent(found.group(2))


async def run_block(name: str, env: dict[str, str]) -> None:
    await run(["bash", "-euo", "pipefail", "-c", guide_block(name)], env, what=name)


async def run(command: list[str], env: dict[str, str], *, what: str) -> None:
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{what}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"


async def admin(sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def pg_tools_path() -> str:
    """PATH with the client tools of the server's major version first (pg_dump refuses a newer
    server; the postgres container's own tools always match)."""
    version = int((await admin("SHOW server_version_num"))[0][0]) // 10000
    matching = Path(f"/usr/lib/postgresql/{version}/bin")
    if (matching / "pg_dump").exists():
        return f"{matching}{os.pathsep}{os.environ['PATH']}"
    if shutil.which("pg_dump") is None:
        pytest.skip("no pg_dump on this machine")
    return os.environ["PATH"]


@pytest.fixture
async def roles(pg_available: bool, run_id: str) -> AsyncIterator[dict[str, str]]:
    """Two services' database (and role) names of this run's own; both dropped afterwards."""
    if not pg_available:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    names = {service: f"cradle_{run_id}_bk_{service}" for service in SERVICES}
    yield names
    for name in names.values():
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin(f'DROP ROLE IF EXISTS "{name}"')


async def test_a_database_restored_by_the_guide_reads_back_decrypted_with_the_restored_keys(
    tmp_path: Path,
    roles: dict[str, str],
    shared_nats_url: str,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pg = make_url(PG_ADMIN_URL)
    secrets_dir, nats_dir = tmp_path / "secrets", tmp_path / "nats"
    workforce_db = roles["workforce"]
    env = {
        **os.environ,
        "PATH": await pg_tools_path(),
        "PGHOST": pg.host or "127.0.0.1",
        "PGPORT": str(pg.port or 5432),
        "PG": "",  # the tools run here, not in the postgres container
        "CRADLE_DATABASES": " ".join(roles.values()),
        "CRADLE_SECRETS_DIR": str(secrets_dir),
        "CRADLE_NATS_DIR": str(nats_dir),
        "CRADLE_DB_PASSWORD_DIR": str(secrets_dir),  # compose sets it in the postgres container
        "INIT_DATABASES": str(INIT_DATABASES),
        "BACKUP": str(tmp_path / "backup" / "2026-12-03T0300"),
        "KEYS_BACKUP": str(tmp_path / "elsewhere" / "2026-12-03"),
    }

    # Section 1: the secret files; the bus's directory (`cradle nats init`).
    await run_block("make-secrets", env)
    init_trust(nats_dir, namespace=namespace)
    for name in roles.values():
        assert (secrets_dir / f"postgres-{name}-password").stat().st_mode & 0o777 == 0o444
    # The postgres container's first start: the roles and their empty databases, least privilege.
    await run([str(INIT_DATABASES)], env, what="init-databases.sh")
    rows = await admin(
        "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = ANY($1)",
        list(roles.values()),
    )
    assert sorted(
        (r["rolname"], r["rolsuper"], r["rolcreatedb"], r["rolcreaterole"]) for r in rows
    ) == sorted((name, False, False, False) for name in roles.values())
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for database"):
        await asyncpg.connect(
            host=env["PGHOST"], port=int(env["PGPORT"]), user=workforce_db, database=roles["registry"]
        )

    # `cradle migrate` as compose's migrate container runs it: each database as its own role, the
    # password from its file and not in the URL.
    migrate_env = {"CRADLE_DATA_DIR": str(tmp_path / "data")}
    for service, name in roles.items():
        migrate_env[f"{service.upper()}_DATABASE_URL"] = (
            f"postgresql+asyncpg://{name}@{env['PGHOST']}:{env['PGPORT']}/{name}"
        )
        migrate_env[f"{service.upper()}_DATABASE_PASSWORD_FILE"] = str(
            secrets_dir / f"postgres-{name}-password"
        )
    # No stream provisioning here (no NATS_URL): the namespace has its streams.
    for variable in ("NATS_URL", *(f"{service.upper()}_DATABASE_PASSWORD" for service in SERVICES)):
        monkeypatch.delenv(variable, raising=False)
    migrated = await asyncio.to_thread(CliRunner().invoke, cradle, ["migrate", *SERVICES], env=migrate_env)
    assert migrated.exit_code == 0, migrated.output
    for name in roles.values():  # every migration ran as its database's role, and owns what it made
        tables = await table_owners(env, name)
        assert tables and set(tables.values()) == {name}, tables

    # The workforce as compose runs it: every secret from a file.
    service_env = {
        "WORKFORCE_DATABASE_URL": migrate_env["WORKFORCE_DATABASE_URL"],
        "WORKFORCE_DATABASE_PASSWORD_FILE": migrate_env["WORKFORCE_DATABASE_PASSWORD_FILE"],
        "CRADLE_INTERNAL_VERIFY_KEY_FILE": str(secrets_dir / "internal-verify-key"),
        "WORKFORCE_PII_KEYS_FILE": str(secrets_dir / "workforce-pii-keys"),
        "WORKFORCE_PII_ACTIVE_KEY_ID_FILE": str(secrets_dir / "workforce-pii-active-key-id"),
        "WORKFORCE_PII_HMAC_KEY_FILE": str(secrets_dir / "workforce-pii-hmac-key"),
        "NATS_URL": shared_nats_url,
        "CRADLE_EVENT_NAMESPACE": namespace,
    }
    for variable in (
        "CRADLE_INTERNAL_VERIFY_KEY",
        "WORKFORCE_PII_KEYS",
        "WORKFORCE_PII_ACTIVE_KEY_ID",
        "WORKFORCE_PII_HMAC_KEY",
    ):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in service_env.items():
        monkeypatch.setenv(variable, value)
    signer = IdentitySigner((secrets_dir / "internal-signing-key").read_text())
    key_id = (secrets_dir / "workforce-pii-active-key-id").read_text().strip()
    number = new_id_number()

    async with workforce() as api:
        created = await api.post(
            "/v1/practitioners",
            json={"id_number": number, "name": "张三", "phone": "13812345678", "nationality": "CN"},
            headers={IDENTITY_HEADER: signer.sign(EMPLOYER)},
        )
        assert created.status_code == 201, created.text
        practitioner_id = created.json()["id"]
    sealed = await role_fetch(
        env, workforce_db, "SELECT id_number_key_id, id_number_encrypted FROM practitioner"
    )
    assert [(row[0], number in row[1]) for row in sealed] == [(key_id, False)]  # stored encrypted

    # Section 5: back up the databases and, apart, the keys.
    await run_block("backup-databases", env)
    await run_block("backup-keys", env)
    assert (Path(env["BACKUP"]) / f"{workforce_db}.dump").stat().st_size > 0

    # The disaster: the database server and its secrets are gone.
    await admin(f'DROP DATABASE "{workforce_db}" WITH (FORCE)')
    shutil.rmtree(secrets_dir)
    shutil.rmtree(nats_dir)

    # Restore: the keys from their own backup, then the databases, by the guide.
    await run_block("restore-keys", env)
    await run_block("restore-databases", env)
    assert (nats_dir / "trust.json").exists()

    async with workforce() as api:
        read = await api.get(
            f"/v1/practitioners/{practitioner_id}",
            headers={IDENTITY_HEADER: signer.sign(POLICE), "X-Purpose": "case 2026-123"},
        )
        assert read.status_code == 200, read.text
        assert (read.json()["id_number"], read.json()["phone"]) == (number, "13812345678")
        again = await api.post(
            "/v1/practitioners",
            json={"id_number": new_id_number(), "name": "李四", "phone": "13912345678", "nationality": "CN"},
            headers={IDENTITY_HEADER: signer.sign(EMPLOYER)},
        )
        assert again.status_code == 201, again.text  # the restored database takes writes too
    assert set((await table_owners(env, workforce_db)).values()) == {workforce_db}

    # Restored without the key: a key file that holds another key refuses the start, naming the
    # missing one; a key file that is not there at all is one line naming the variable and the path.
    keys_file = secrets_dir / "workforce-pii-keys"
    restored_keys = keys_file.read_text()
    keys_file.chmod(0o600)
    keys_file.write_text(json.dumps({"k20270101-000000": new_key()}))
    (secrets_dir / "workforce-pii-active-key-id").chmod(0o600)
    (secrets_dir / "workforce-pii-active-key-id").write_text("k20270101-000000\n")
    with pytest.raises(LostKeys, match=key_id):
        async with running(create_workforce(WorkforceSettings(log_level="WARNING"))):  # type: ignore[call-arg]
            pass
    keys_file.unlink()
    with pytest.raises(SettingsError, match=f"WORKFORCE_PII_KEYS_FILE={keys_file}: cannot read it"):
        WorkforceSettings()  # type: ignore[call-arg]
    assert json.loads(restored_keys)[key_id]


@asynccontextmanager
async def workforce() -> AsyncIterator[httpx.AsyncClient]:
    """The workforce service on the settings in the environment, and a client on its API."""
    app = create_workforce(WorkforceSettings(log_level="WARNING"))  # type: ignore[call-arg]
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://workforce") as client:
            yield client


async def role_fetch(env: dict[str, str], role: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(host=env["PGHOST"], port=int(env["PGPORT"]), user=role, database=role)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def table_owners(env: dict[str, str], role: str) -> dict[str, str]:
    rows = await role_fetch(
        env, role, "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'"
    )
    return {row["tablename"]: row["tableowner"] for row in rows}
