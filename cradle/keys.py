"""`cradle keys rotate|reencrypt|retire`: personal-data keys of an embedded deployment (the files
under <data>/keys/). Rotation adds a key, makes it active and re-seals every row under it; only
then may the old key be retired. Keys given by a secret store (`<SERVICE>_PII_KEYS`, or the file its
`_FILE` names) are added and removed there; `rotate --secrets-dir` adds one to compose's secret
files (`<service>-pii-keys`, `<service>-pii-active-key-id`) without printing it, and leaves the
re-encryption to `reencrypt` once the service reads the new key. `reencrypt` and `retire`'s checks
work on such keys as on the files."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import text

from cradle.layout import PiiKeys, data_dir, database_url, load_pii_keys, save_pii_keys
from cradle.services import PERSONAL_DATA
from shared.db import make_engine
from shared.pii import decode_key, new_key
from shared.pii_keys import SealedColumn, new_key_id, reencrypt, rows_under

app = typer.Typer(help="Personal-data keys: rotate, re-encrypt, retire.", no_args_is_help=True)
console = Console(soft_wrap=True)
ServiceOption = Annotated[
    str | None,
    typer.Option("--service", help=f"One of {', '.join(PERSONAL_DATA)} (default: all of them)"),
]


def sealed_columns(service: str) -> tuple[SealedColumn, ...]:
    if service not in PERSONAL_DATA:
        raise ValueError(f"{service} holds no personal data")
    return PERSONAL_DATA[service].sealed()


def _services(service: str | None) -> list[str]:
    if service is None:
        return list(PERSONAL_DATA)
    if service not in PERSONAL_DATA:
        raise typer.BadParameter(f"one of {', '.join(PERSONAL_DATA)}", param_hint="--service")
    return [service]


def _store_variable(service: str) -> str | None:
    """The variable the keys come from when a secret store gives them, else None (<data>/keys/)."""
    for variable in (f"{service.upper()}_PII_KEYS", f"{service.upper()}_PII_KEYS_FILE"):
        if os.environ.get(variable):
            return variable
    return None


def _keys(service: str) -> PiiKeys:
    """The keys the service runs with, wherever they come from."""
    return load_pii_keys(service, data_dir() / "keys")


def _file_keys(service: str) -> PiiKeys:
    """The keys under <data>/keys/, which this command may rewrite."""
    store = _store_variable(service)
    if store:
        console.print(
            f"[red]{service}: keys come from {store}; add the new key there and make it active (compose's "
            f"secret files: `cradle keys rotate --service {service} --secrets-dir DIR`), restart the "
            f"service, then run `cradle keys reencrypt --service {service}` (deploy/README.md)."
        )
        raise typer.Exit(2)
    return _keys(service)


async def _reencrypt(service: str, keys: PiiKeys) -> int:
    from shared.pii import PiiCipher

    cipher = PiiCipher({kid: decode_key(key) for kid, key in keys.keys.items()}, keys.active_key_id)
    engine = make_engine(database_url(service, data_dir()))
    try:
        return await reencrypt(engine, columns=sealed_columns(service), cipher=cipher)
    finally:
        await engine.dispose()


SecretsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--secrets-dir",
        help="The directory of compose's secret files (CRADLE_SECRETS_DIR): add the new key to "
        "<service>-pii-keys and make it active in <service>-pii-active-key-id; re-encrypt after "
        "the service is recreated (`cradle keys reencrypt`)",
        file_okay=False,
        dir_okay=True,
        exists=True,
    ),
]


def _replace_secret(path: Path, content: str) -> None:
    """Rewrite a secret file in place of the old one, atomically, with the old one's mode (compose's
    files are 0444 in a directory only root opens): never a moment without it, never half of it."""
    mode = stat.S_IMODE(path.stat().st_mode)
    staging = path.with_name(f".{path.name}.new")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(staging, mode)
    os.replace(staging, path)


def add_secret_file_key(service: str, secrets_dir: Path) -> str:
    """Add a new key to `<service>-pii-keys` in compose's secret files, make it active in
    `<service>-pii-active-key-id`, and return its id. The keys file is written first: a crash
    between the two leaves the old key active and the new one merely listed."""
    keys_file = secrets_dir / f"{service}-pii-keys"
    active_file = secrets_dir / f"{service}-pii-active-key-id"
    for path in (keys_file, active_file):
        if not path.is_file():
            raise typer.BadParameter(f"no {path.name} in {secrets_dir}", param_hint="--secrets-dir")
    try:
        keys = json.loads(keys_file.read_text())
    except json.JSONDecodeError:
        raise typer.BadParameter(f"{keys_file} is not JSON", param_hint="--secrets-dir") from None
    if not isinstance(keys, dict):
        raise typer.BadParameter(f"{keys_file} is not a JSON object", param_hint="--secrets-dir")
    kid = new_key_id()
    keys[kid] = new_key()
    _replace_secret(keys_file, json.dumps(keys) + "\n")
    _replace_secret(active_file, kid + "\n")
    return kid


@app.command()
def rotate(service: ServiceOption = None, secrets_dir: SecretsDirOption = None) -> None:
    """Add a new key, make it active, and re-encrypt every row under it (with --secrets-dir: add it
    to compose's secret files; re-encrypt once the service runs with it)."""
    if secrets_dir is not None:
        for name in _services(service):
            kid = add_secret_file_key(name, secrets_dir)
            console.print(f"{name}: key [bold]{kid}[/] added to {name}-pii-keys and active")
        names = " ".join(_services(service))
        console.print(
            f"Back up the secret files; recreate the services (`docker-compose up -d --force-recreate "
            f"{names}`) so they seal with the new key; then `cradle keys reencrypt` in each."
        )
        return
    for name in _services(service):
        keys = _file_keys(name)
        kid = new_key_id()
        keys.keys[kid] = new_key()
        keys.active_key_id = kid
        save_pii_keys(name, data_dir() / "keys", keys)  # first: a crash below leaves a resumable state
        done = asyncio.run(_reencrypt(name, keys))
        console.print(f"{name}: key [bold]{kid}[/] active; {done} values re-encrypted")
    console.print(
        "Restart the services (`cradle up`) so they encrypt with the new key; back up <data>/keys/."
    )


@app.command("reencrypt")
def reencrypt_command(service: ServiceOption = None) -> None:
    """Re-encrypt every row not yet under the active key (resumes an interrupted rotation)."""
    for name in _services(service):
        keys = _keys(name)
        done = asyncio.run(_reencrypt(name, keys))
        console.print(f"{name}: {done} values re-encrypted under {keys.active_key_id}")


async def _in_use(service: str, key_id: str) -> int:
    engine = make_engine(database_url(service, data_dir()))
    try:
        count = await rows_under(engine, sealed_columns(service), key_id)
        if service == "guidance":  # link codes sealed in stored idempotent replies (kept 24 hours)
            async with engine.connect() as connection:
                query = text("SELECT COUNT(*) FROM idempotency_record WHERE body LIKE :pattern")
                pattern = f'%"link_code": "{key_id}:%'
                count += (await connection.execute(query, {"pattern": pattern})).scalar_one()
        return count
    finally:
        await engine.dispose()


@app.command()
def retire(key_id: str, service: ServiceOption = None) -> None:
    """Remove a key once no row uses it; refuses the active key and a key still in use."""
    holders = [name for name in _services(service) if key_id in _keys(name).keys]
    if not holders:
        console.print(f"[red]No key {key_id} in {', '.join(_services(service))}.")
        raise typer.Exit(1)
    for name in holders:
        keys = _keys(name)
        if keys.active_key_id == key_id:
            console.print(f"[red]{name}: {key_id} is the active key; rotate first.")
            raise typer.Exit(1)
        in_use = asyncio.run(_in_use(name, key_id))
        if in_use:
            console.print(
                f"[red]{name}: {in_use} values are still encrypted under {key_id}; "
                f"run `cradle keys reencrypt --service {name}` first."
            )
            raise typer.Exit(1)
        store = _store_variable(name)
        if store:
            console.print(f"{name}: no value uses {key_id}; remove it from {store} and restart the service")
            continue
        del keys.keys[key_id]
        save_pii_keys(name, data_dir() / "keys", keys)
        console.print(f"{name}: key {key_id} retired")
