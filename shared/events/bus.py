"""One NATS connection per process. It keeps trying in the background when NATS is down at start,
so a service serves requests (writing events to its outbox) while the broker is away. It connects
with the process's own credential (a `.creds` file) when one is configured, and only waits for the
streams it uses: creating them is the provisioning step's job, never a service's.

nats-py's `connect` with unlimited reconnects never returns while no server answers, so each
attempt here is bounded (every server tried twice) and only a live connection reconnects without
limit. While the bus is away the log says so once a minute, not once per attempt."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import nats
import structlog
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from shared.bounded import raise_if_cancelling, settle, stop_task
from shared.events.streams import Namespace, wait_for_streams
from shared.events.tls import client_tls

log = structlog.get_logger("cradle.bus")
WARN_EVERY_SECONDS = 60.0
WARN_AFTER_SECONDS = 5.0  # a start-up's first connection is not worth a warning
# Per attempt: a server that refused this many times is dropped until the next attempt.
ATTEMPT_RECONNECTS = 1


class EventBus:
    def __init__(
        self,
        *,
        url: str,
        namespace: Namespace,
        replicas: int,
        client_name: str,
        streams: Sequence[str] = (),
        credentials: Path | None = None,
        tls_ca: Path | None = None,
        inbox_prefix: str = "_INBOX",
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.replicas = replicas
        self.client_name = client_name
        self.streams = tuple(streams)
        self.credentials = credentials
        self.tls = client_tls(tls_ca)  # made once: a bad CA file fails the start, not each attempt
        self.inbox_prefix = inbox_prefix
        self.nc: NATS | None = None
        self.js: JetStreamContext | None = None
        self._ready = asyncio.Event()
        self._connector: asyncio.Task[None] | None = None
        self._on_reconnect: list[Callable[[], None]] = []
        self._closing = False
        self._watcher: asyncio.Task[None] | None = None
        # When the bus was last seen usable (or the process started), and why it is not now.
        self.away_since: float | None = time.time()
        self.last_error: str | None = None
        self.failed_attempts = 0
        self._attempt: NATS | None = None  # the connection being set up, until its streams are there

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._on_reconnect.append(callback)

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected and self._ready.is_set()

    def concern(self) -> str | None:
        """For readiness: why events cannot leave now, or None."""
        if self.connected:
            return None
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.away_since or time.time()))
        if self.nc is None and self._attempt is not None and self._attempt.is_connected:
            return f"connected to {self.url}, waiting since {since} for the streams (`cradle nats provision`)"
        why = f": {self.last_error}" if self.last_error else ""
        return f"not connected to {self.url} since {since}{why}; events wait in the outbox"

    async def wait_ready(self) -> JetStreamContext:
        await self._ready.wait()
        assert self.js is not None
        return self.js

    def start(self) -> None:
        self._connector = asyncio.create_task(self._connect_until_ready(), name="nats-connect")
        self._watcher = asyncio.create_task(self._warn_while_away(), name="nats-watch")

    async def _connect_until_ready(self) -> None:
        delay = 0.2
        while True:
            nc: NATS | None = None
            try:
                nc = await nats.connect(
                    self.url.split(","),
                    name=self.client_name,
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=ATTEMPT_RECONNECTS,
                    reconnect_time_wait=0.5,
                    reconnected_cb=self._reconnected,
                    disconnected_cb=self._disconnected,
                    error_cb=self._error,
                    user_credentials=str(self.credentials) if self.credentials else None,
                    tls=self.tls,
                    inbox_prefix=self.inbox_prefix,
                )
                self._attempt = nc
                # Connected: from now on a lost connection is retried without limit, in the background.
                nc.options["max_reconnect_attempts"] = -1
                js = nc.jetstream(timeout=5)
                await wait_for_streams(js, self.streams)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise_if_cancelling()
                self.last_error = _describe(exc)
                self.failed_attempts += 1
                log.debug("nats_attempt_failed", url=self.url, error=self.last_error)
                with contextlib.suppress(Exception):
                    if nc is not None and not nc.is_closed:
                        await nc.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.nc, self.js, self._attempt = nc, js, None
            self._ready.set()
            self.away_since, self.last_error = None, None
            log.info("nats_connected", url=self.url)
            for callback in self._on_reconnect:
                callback()
            return

    async def _warn_while_away(self) -> None:
        """One warning a minute while events cannot leave, whether the bus never answered or went away."""
        warned_at = float("-inf")
        while True:
            await asyncio.sleep(1.0)
            if self.connected or self._closing:
                continue
            now = time.monotonic()
            away = time.time() - (self.away_since or time.time())
            if away >= WARN_AFTER_SECONDS and now - warned_at >= WARN_EVERY_SECONDS:
                warned_at = now
                log.warning("nats_unavailable", reason=self.concern())

    async def _reconnected(self) -> None:
        self.away_since, self.last_error = None, None
        log.info("nats_reconnected")
        for callback in self._on_reconnect:
            callback()

    async def _disconnected(self) -> None:
        if not self._closing:
            self.away_since = self.away_since or time.time()
            log.warning("nats_disconnected")

    async def _error(self, exc: Exception) -> None:
        self.last_error = _describe(exc)
        log.debug("nats_error", error=self.last_error)

    async def close(self) -> None:
        self._closing = True
        for task in (self._connector, self._watcher):
            await stop_task("nats connector", task, seconds=5)
        if self.nc is not None and not self.nc.is_closed:
            await settle("nats drain", self.nc.drain(), seconds=5)
            await settle("nats close", self.nc.close(), seconds=5)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
