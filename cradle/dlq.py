"""`cradle dlq`: the dead letters every service's consumers parked, listed, shown and replayed once
the consumer is fixed (shared/events/deadletters.py has the layout and why replays are safe)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import nats
import typer
from nats.js import JetStreamContext
from rich.console import Console
from rich.table import Table

from cradle.nats import quiet
from shared.events.deadletters import DeadLetter, get_dead_letter, list_dead_letters, replay
from shared.events.streams import DEFAULT_NAMESPACE, Namespace
from shared.events.tls import client_tls_from_env

app = typer.Typer(help="Dead letters: events a consumer gave up on.", no_args_is_help=True)
console = Console()

URL = typer.Option("nats://127.0.0.1:4222", envvar="NATS_URL")
NAMESPACE = typer.Option(DEFAULT_NAMESPACE, envvar="CRADLE_EVENT_NAMESPACE")
CREDS = typer.Option(None, "--creds", envvar="NATS_ADMIN_CREDS", help="The admin .creds (replay publishes).")


@asynccontextmanager
async def jetstream(url: str, credentials: Path | None) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(
        url.split(","),
        connect_timeout=3,
        allow_reconnect=False,
        max_reconnect_attempts=1,  # a bounded try: see cradle.nats.quiet
        error_cb=quiet,
        user_credentials=str(credentials) if credentials else None,
        tls=client_tls_from_env(),
    )
    try:
        yield nc.jetstream(timeout=5)
    finally:
        await nc.close()


async def list_letters(
    *, url: str, namespace: str, credentials: Path | None = None, include_replayed: bool = False
) -> list[DeadLetter]:
    async with jetstream(url, credentials) as js:
        return await list_dead_letters(js, Namespace(namespace), include_replayed=include_replayed)


async def show_letter(
    *, url: str, namespace: str, seq: int, credentials: Path | None = None
) -> DeadLetter | None:
    async with jetstream(url, credentials) as js:
        return await get_dead_letter(js, Namespace(namespace), seq)


async def replay_letters(
    *,
    url: str,
    namespace: str,
    seqs: list[int] | None = None,
    consumer: str | None = None,
    credentials: Path | None = None,
) -> list[DeadLetter]:
    """Replay the given waiting dead letters, or every waiting one (of `consumer`, when named).
    A sequence that is not waiting (unknown, or replayed already) is refused: nothing happens twice."""
    ns = Namespace(namespace)
    async with jetstream(url, credentials) as js:
        if seqs:
            letters: list[DeadLetter] = []
            for seq in seqs:
                letter = await get_dead_letter(js, ns, seq)
                if letter is None or letter.replayed:
                    raise LookupError(f"no dead letter {seq} waiting for a replay (replayed already?)")
                letters.append(letter)
        else:
            letters = await list_dead_letters(js, ns)
        if consumer:
            letters = [letter for letter in letters if consumer in (letter.consumer, _name(letter))]
        return [await replay(js, ns, letter) for letter in letters]


def _name(letter: DeadLetter) -> str:
    return f"{letter.service}.{letter.consumer}"


def _when(letter: DeadLetter) -> str:
    moment = letter.replayed_at or letter.dead_lettered_at
    return moment.isoformat(timespec="seconds") if moment else "—"


@app.command("list")
def list_command(
    url: str = URL,
    namespace: str = NAMESPACE,
    credentials: Path = CREDS,
    include_replayed: bool = typer.Option(False, "--all", help="Also the records of past replays."),
) -> None:
    """The dead letters waiting for a replay (oldest first)."""
    letters = asyncio.run(
        list_letters(url=url, namespace=namespace, credentials=credentials, include_replayed=include_replayed)
    )
    extra = ["replayed"] if include_replayed else []
    table = Table("seq", "consumer", "event id", "type", "reason", "time", *extra)
    for letter in letters:
        table.add_row(
            str(letter.seq),
            _name(letter),
            letter.event_id or "—",
            letter.event_type or "—",
            letter.reason[:80],
            _when(letter),
            *(["yes" if letter.replayed else ""] if extra else []),
        )
    console.print(table)
    console.print(f"{len(letters)} dead letter(s)")


@app.command("show")
def show_command(
    seq: int = typer.Argument(..., help="The dead letter's sequence on the dead-letter stream."),
    url: str = URL,
    namespace: str = NAMESPACE,
    credentials: Path = CREDS,
) -> None:
    """One dead letter: where it came from, why it failed, and the event itself."""
    letter = asyncio.run(show_letter(url=url, namespace=namespace, seq=seq, credentials=credentials))
    if letter is None:
        console.print(f"[red]no dead letter {seq}[/]")
        raise typer.Exit(1)
    try:
        event: object = json.loads(letter.data)
    except ValueError:
        event = letter.data.decode("utf-8", "replace")
    console.print_json(
        json.dumps(
            {
                "seq": letter.seq,
                "consumer": _name(letter),
                "original_subject": letter.original_subject,
                "event_id": letter.event_id,
                "event_type": letter.event_type,
                "facility_id": letter.facility_id,
                "reason": letter.reason,
                "dead_lettered_at": letter.dead_lettered_at.isoformat() if letter.dead_lettered_at else None,
                "replayed_at": letter.replayed_at.isoformat() if letter.replayed_at else None,
                "event": event,
            },
            ensure_ascii=False,
        )
    )


@app.command("replay")
def replay_command(
    seqs: list[int] = typer.Argument(None, help="Dead letters to replay (default: with --all, every one)."),
    replay_all: bool = typer.Option(False, "--all", help="Replay every waiting dead letter."),
    consumer: str = typer.Option(None, help="Only this consumer's (e.g. workforce or workforce.workforce)."),
    url: str = URL,
    namespace: str = NAMESPACE,
    credentials: Path = CREDS,
) -> None:
    """Republish the original events, unchanged, for the failed consumer to handle once more."""
    if not seqs and not replay_all:
        raise typer.BadParameter("name the dead letters to replay, or --all")
    try:
        job = replay_letters(
            url=url, namespace=namespace, seqs=seqs, consumer=consumer, credentials=credentials
        )
        done = asyncio.run(job)
    except LookupError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    for letter in done:
        console.print(
            f"[green]replayed[/] {letter.event_id or '—'} {letter.event_type or ''} → {_name(letter)}"
        )
    console.print(f"{len(done)} replayed")
