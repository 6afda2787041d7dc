"""`cradle audit verify`: walk the gateway's audit chain with its HMAC key, hold it against the latest
signed checkpoint on JetStream, and name the first broken record or the missing ones."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import nats
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.console import Console

from cradle.layout import AUDIT_HMAC_FILE, AUDIT_VERIFY_FILE, data_dir, database_url
from cradle.nats import quiet
from gateway.audit import ChainKey, ChainReport, verify
from gateway.checkpoints import Checkpoint, CheckpointInvalid, latest_checkpoint, load_verify_key
from shared.db import make_engine
from shared.events.streams import DEFAULT_NAMESPACE, Namespace
from shared.events.tls import client_tls_from_env

app = typer.Typer(help="The gateway's audit log.", no_args_is_help=True)
console = Console(soft_wrap=True)


class CheckpointUnavailable(RuntimeError):
    """NATS could not be asked for the latest checkpoint."""


async def read_checkpoint(
    *, nats_url: str, namespace: str, verify_key: Ed25519PublicKey, credentials: Path | None = None
) -> Checkpoint | None:
    try:
        nc = await nats.connect(
            nats_url.split(","),
            connect_timeout=3,
            allow_reconnect=False,
            max_reconnect_attempts=1,  # a bounded try: see cradle.nats.quiet
            error_cb=quiet,
            name="cradle-audit-verify",
            user_credentials=str(credentials) if credentials else None,
            tls=client_tls_from_env(),
        )
    except Exception as exc:
        raise CheckpointUnavailable(f"{type(exc).__name__}: {exc}"[:200]) from exc
    try:
        return await latest_checkpoint(nc.jetstream(timeout=5), Namespace(namespace), verify_key)
    except CheckpointInvalid:
        raise
    except Exception as exc:
        raise CheckpointUnavailable(f"{type(exc).__name__}: {exc}"[:200]) from exc
    finally:
        await nc.close()


async def verify_chain(
    url: str,
    *,
    key: ChainKey,
    nats_url: str | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    verify_key: Ed25519PublicKey | None = None,
    credentials: Path | None = None,
) -> ChainReport:
    """The chain in the database at `url`, held against the latest checkpoint when `nats_url` is
    given (CheckpointUnavailable when NATS does not answer; CheckpointInvalid for a forgery)."""
    checkpoint = None
    if nats_url is not None:
        assert verify_key is not None, "checking a checkpoint needs the audit verify key"
        checkpoint = await read_checkpoint(
            nats_url=nats_url, namespace=namespace, verify_key=verify_key, credentials=credentials
        )
    engine = make_engine(url)
    try:
        return await verify(engine, key=key, checkpoint=checkpoint)
    finally:
        await engine.dispose()


def _key_material(base: Path) -> tuple[ChainKey, Ed25519PublicKey | None]:
    """The keys `cradle up` made (or the deployment's, from the environment); never new ones."""
    keys_dir = base / "keys"
    encoded = os.environ.get("GATEWAY_AUDIT_HMAC_KEY")
    if not encoded and (keys_dir / AUDIT_HMAC_FILE).exists():
        encoded = (keys_dir / AUDIT_HMAC_FILE).read_text().strip()
    if not encoded:
        console.print(
            "[red]no audit key[/]: set GATEWAY_AUDIT_HMAC_KEY (or CRADLE_DATA_DIR to `cradle up`'s)"
        )
        raise typer.Exit(code=2)
    pem = os.environ.get("GATEWAY_AUDIT_VERIFY_KEY") or os.environ.get("GATEWAY_AUDIT_SIGNING_KEY")
    if not pem and (keys_dir / AUDIT_VERIFY_FILE).exists():
        pem = (keys_dir / AUDIT_VERIFY_FILE).read_text()
    try:
        return ChainKey.from_base64(encoded), load_verify_key(pem) if pem else None
    except ValueError as exc:
        console.print(f"[red]unusable audit key[/]: {exc}")
        raise typer.Exit(code=2) from None


@app.callback()
def audit() -> None:
    """The gateway's audit log (an HMAC chain of every call, anchored by signed checkpoints)."""


@app.command("verify")
def verify_command(
    nats_url: Annotated[
        str, typer.Option(envvar="NATS_URL", help="Where the signed checkpoints are (JetStream).")
    ] = "nats://127.0.0.1:4222",
    namespace: Annotated[
        str, typer.Option(envvar="CRADLE_EVENT_NAMESPACE", help="The deployment's subject namespace.")
    ] = DEFAULT_NAMESPACE,
    nats_creds: Annotated[
        Path | None, typer.Option(envvar="NATS_CREDS", help="A NATS credential that may read the stream.")
    ] = None,
    no_checkpoint: Annotated[
        bool,
        typer.Option("--no-checkpoint", help="Check the database alone: a removed tail then goes unseen."),
    ] = False,
) -> None:
    """Check every record's keyed hash and link, from the retention anchor to the chain head, and
    that every record the latest checkpoint vouches for is there (GATEWAY_DATABASE_URL, else the
    SQLite file under CRADLE_DATA_DIR; keys GATEWAY_AUDIT_HMAC_KEY and GATEWAY_AUDIT_VERIFY_KEY, else
    `cradle up`'s). Exit 1 when the log was changed, 2 when it could not be checked."""
    base = data_dir()
    key, verify_key = _key_material(base)
    if not no_checkpoint and verify_key is None:
        console.print("[red]no checkpoint key[/]: set GATEWAY_AUDIT_VERIFY_KEY, or pass --no-checkpoint")
        raise typer.Exit(code=2)
    try:
        report = asyncio.run(
            verify_chain(
                database_url("gateway", base),
                key=key,
                nats_url=None if no_checkpoint else nats_url,
                namespace=namespace,
                verify_key=verify_key,
                credentials=nats_creds,
            )
        )
    except CheckpointInvalid as exc:
        console.print(f"[red]the latest audit checkpoint is not the gateway's[/]: {exc}")
        raise typer.Exit(code=1) from None
    except CheckpointUnavailable as exc:
        console.print(
            f"[red]could not read the audit checkpoints[/] from {nats_url}: {exc} "
            "(--no-checkpoint checks the database alone)"
        )
        raise typer.Exit(code=2) from None
    if report.ok:
        console.print(f"[green]audit chain intact[/]: {report.checked} records verified")
        if no_checkpoint:
            console.print("[yellow]not held against a checkpoint[/]: a removed tail would not show")
        elif report.checkpoint is None:
            # The gateway checkpoints within a minute of its first record: none at all means the
            # stream was deleted (admin credential) or the gateway never reached NATS.
            console.print(
                f"[red]no checkpoint vouches for these {report.checked} records[/]: the stream "
                f"{Namespace(namespace).stream('gateway')} holds none"
            )
            raise typer.Exit(code=1)
        else:
            signed = f"{report.checkpoint.at:%Y-%m-%d %H:%M:%S}Z"
            console.print(
                f"checkpoint: record {report.checkpoint.seq}, signed {signed}; "
                f"{report.unanchored} newer records are not yet anchored"
            )
        return
    where = f" (request {report.request_id})" if report.request_id else ""
    at = f" at record {report.first_broken_seq}" if report.first_broken_seq is not None else ""
    console.print(
        f"[red]audit chain broken{at}{where}[/]: {report.problem}; "
        f"{report.checked} records before it verified"
    )
    raise typer.Exit(code=1)
