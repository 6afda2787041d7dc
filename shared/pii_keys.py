"""Personal-data keys against the rows they sealed: which key ids a database still uses, refusing
to start without one of them, and re-encrypting every row under the active key (rotation).

Each ciphertext is stored beside its key id (`<field>_key_id`), so rows sealed under an old and a
new key both decrypt while a re-encryption runs. Losing a key file and letting a new one be made
in its place would make every stored number unreadable without a word; these checks make that a
refusal to start, naming the key that is missing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from fastapi import FastAPI
from sqlalchemy import bindparam, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.db import make_engine
from shared.errors import problem_response
from shared.pii import Encrypted, PiiCipher

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SealedColumn:
    """One encrypted field: its table, the key id and ciphertext columns, the AES-GCM context."""

    table: str
    key_id: str
    ciphertext: str
    context: str
    primary_key: str = "id"


class LostKeys(SystemExit):
    """Rows are sealed under key ids this deployment does not have. A SystemExit, so the CLI and
    the services stop with this one line and no traceback."""

    def __init__(self, service: str, missing: Iterable[str]) -> None:
        ids = ", ".join(sorted(missing))
        self.service, self.missing = service, sorted(missing)
        super().__init__(
            f"{service}: personal data in its database is encrypted under key id {ids}, which is not "
            f"configured; restore that key from your key backup (<data>/keys/, or "
            f"{service.upper()}_PII_KEYS) — see deploy/README.md, 'Personal-data keys'. Not starting: "
            f"a new key would leave every stored number unreadable."
        )


def new_key_id() -> str:
    """`k<yyyymmdd>-<random>`: distinct even for two keys made the same day."""
    return f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def key_ids_in_use(engine: AsyncEngine, columns: Sequence[SealedColumn]) -> set[str]:
    """Every key id some row is sealed under (a table not made yet holds none)."""
    tables = await _tables(engine)
    used: set[str] = set()
    async with engine.connect() as connection:
        for column in columns:
            if column.table not in tables:
                continue
            query = text(
                f"SELECT DISTINCT {column.key_id} FROM {column.table} WHERE {column.key_id} IS NOT NULL"
            )
            used.update((await connection.execute(query)).scalars())
    return used


async def rows_under(engine: AsyncEngine, columns: Sequence[SealedColumn], key_id: str) -> int:
    tables = await _tables(engine)
    count = 0
    async with engine.connect() as connection:
        for column in columns:
            if column.table in tables:
                query = text(f"SELECT COUNT(*) FROM {column.table} WHERE {column.key_id} = :kid")
                count += (await connection.execute(query, {"kid": key_id})).scalar_one()
    return count


async def require_keys(
    database_url: str, *, service: str, columns: Sequence[SealedColumn], configured: Iterable[str]
) -> None:
    """Raise LostKeys when the database holds rows under a key id not in `configured`."""
    engine = make_engine(database_url)
    try:
        missing = await key_ids_in_use(engine, columns) - set(configured)
    finally:
        await engine.dispose()
    if missing:
        raise LostKeys(service, missing)


def require_keys_sync(
    database_url: str, *, service: str, columns: Sequence[SealedColumn], configured: Iterable[str]
) -> None:
    """The same, for the CLI's synchronous start-up (also when called inside a running loop)."""
    if _absent_sqlite(database_url):
        return
    _run(lambda: require_keys(database_url, service=service, columns=columns, configured=list(configured)))


def _absent_sqlite(database_url: str) -> bool:
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return False
    from pathlib import Path

    return not Path(url.database).exists()


def _run(make: Callable[[], Coroutine[object, object, T]]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(1) as pool:  # inside a loop (seed-demo): a loop of its own, in a thread
        return pool.submit(lambda: asyncio.run(make())).result()


class _OneLine(logging.Filter):
    """uvicorn logs a failed start-up with the lifespan's traceback; for LostKeys, the line is
    the whole story."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if LostKeys.__name__ + ":" in message:
            record.msg, record.args = message.rstrip().splitlines()[-1].split(": ", 1)[1], None
        return True


def refuse_lost_keys(
    app: FastAPI,
    *,
    service: str,
    columns: Sequence[SealedColumn],
    database_url: str,
    configured: Iterable[str],
) -> None:
    """Wrap the app's lifespan: before anything starts, refuse if rows use a key it lacks. A database
    that cannot be reached yet does not stop the start (requests answer 503 until it returns, as
    for any outage): the check then runs in the background as soon as it answers, and a lost key
    found that way refuses every request with a 503 naming it."""
    inner = app.router.lifespan_context
    key_ids = list(configured)
    verdict = _KeysVerdict()
    app.add_middleware(_RefuseWhenKeysLost, verdict=verdict)

    async def check() -> None:
        await require_keys(database_url, service=service, columns=columns, configured=key_ids)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        later: asyncio.Task[None] | None = None
        try:
            await check()
        except LostKeys:
            logging.getLogger("uvicorn.error").addFilter(_OneLine())
            raise
        except (OSError, SQLAlchemyError) as exc:
            log.warning("%s: personal-data keys unchecked, the database is unreachable (%s)", service, exc)
            later = asyncio.create_task(_check_when_reachable(check, verdict), name="pii-key-check")
        try:
            async with inner(app):
                yield
        finally:
            if later is not None:
                later.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await later

    app.router.lifespan_context = lifespan  # type: ignore[assignment]


class _KeysVerdict:
    lost: LostKeys | None = None


async def _check_when_reachable(check: Callable[[], Awaitable[None]], verdict: _KeysVerdict) -> None:
    while True:
        await asyncio.sleep(5)
        try:
            await check()
            return
        except LostKeys as lost:
            log.critical("%s", lost)
            verdict.lost = lost
            return
        except (OSError, SQLAlchemyError):
            continue


class _RefuseWhenKeysLost:
    """Pure ASGI (one attribute read per request): once a lost key is found, nothing is served
    that could read or write personal data under the wrong keys; /healthz still answers."""

    def __init__(self, app: ASGIApp, *, verdict: _KeysVerdict) -> None:
        self.app = app
        self.verdict = verdict

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lost = self.verdict.lost
        if lost is not None and scope["type"] == "http" and scope["path"] != "/healthz":
            response = problem_response(
                status=503,
                title="Personal-data keys missing",
                type_="/problems/unavailable",
                detail=str(lost),
                headers={"Retry-After": "60"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def reencrypt(
    engine: AsyncEngine,
    *,
    columns: Sequence[SealedColumn],
    cipher: PiiCipher,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Re-seal every row not under the active key, a batch per transaction; returns how many.
    Resumable and idempotent (rows already under the active key are not selected), and safe beside
    the running service: each UPDATE applies only if the row still holds the ciphertext read, so a
    value the service changed meanwhile is left to the next pass, never overwritten."""
    tables = await _tables(engine)
    active = cipher.active_key_id
    done = 0
    for column in columns:
        if column.table not in tables:
            continue
        pk, kid, sealed = column.primary_key, column.key_id, column.ciphertext
        select_batch = text(
            f"SELECT {pk}, {kid}, {sealed} FROM {column.table} "
            f"WHERE {kid} IS NOT NULL AND {kid} <> :active AND {pk} > :after ORDER BY {pk} LIMIT :n"
        )
        update = text(
            f"UPDATE {column.table} SET {kid} = :new_kid, {sealed} = :new_sealed "
            f"WHERE {pk} = :pk AND {kid} = :old_kid AND {sealed} = :old_sealed"
        ).bindparams(bindparam("pk"))
        after = ""
        while True:
            async with engine.begin() as connection:
                rows = (
                    await connection.execute(
                        select_batch, {"active": active, "after": after, "n": batch_size}
                    )
                ).all()
                if not rows:
                    break
                for row_pk, old_kid, old_sealed in rows:
                    plain = cipher.decrypt(Encrypted(old_kid, old_sealed), context=column.context)
                    fresh = cipher.encrypt(plain, context=column.context)
                    result = await connection.execute(
                        update,
                        {
                            "pk": row_pk,
                            "new_kid": fresh.key_id,
                            "new_sealed": fresh.ciphertext,
                            "old_kid": old_kid,
                            "old_sealed": old_sealed,
                        },
                    )
                    done += result.rowcount
                after = rows[-1][0]
            if progress is not None:
                progress(done)
    return done
