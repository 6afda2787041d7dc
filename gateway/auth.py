"""Per-request identity at no database cost: verified tokens, clients' enabled flags and the signed
internal identity are cached for seconds, so the hot path is a few dictionary look-ups."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from gateway.config import GatewaySettings
from gateway.service import identity_from_token, token_expiry
from shared.errors import ServiceUnavailable, Unauthorized
from shared.identity import Identity, IdentitySigner

log = structlog.get_logger("cradle.gateway.auth")
MAX_CACHED = 20_000  # a bound, so a flood of distinct tokens cannot grow memory without limit


@dataclass(slots=True)
class Caller:
    identity: Identity
    expires_at: float  # the client token's `exp`
    signed: str = ""  # the internal identity token, reused until `signed_until`
    signed_until: float = 0.0


class TokenCache:
    """Verified client tokens by their text. A cached token is still refused past its `exp`."""

    def __init__(self, settings: GatewaySettings, signer: IdentitySigner) -> None:
        self.settings = settings
        self.signer = signer
        self.identity_seconds = settings.identity_cache_seconds
        self._entries: dict[str, Caller] = {}

    def caller(self, token: str) -> Caller:
        now = time.time()
        entry = self._entries.get(token)
        if entry is None:
            identity = identity_from_token(settings=self.settings, token=token)
            entry = Caller(identity=identity, expires_at=token_expiry(token))
            if len(self._entries) >= MAX_CACHED:
                self._entries.clear()
            self._entries[token] = entry
        if now >= entry.expires_at:
            self._entries.pop(token, None)
            raise Unauthorized("The access token is invalid or expired.")
        return entry

    def signed_identity(self, caller: Caller) -> str:
        now = time.time()
        if now >= caller.signed_until:
            caller.signed = self.signer.sign(caller.identity)
            caller.signed_until = now + self.identity_seconds
        return caller.signed


class ClientStatus:
    """Whether a client is enabled, re-read from the database at most every `ttl` seconds per
    client (one query in flight per client); disabling on this replica takes effect at once."""

    def __init__(self, load: Callable[[str], Awaitable[bool | None]], ttl: float) -> None:
        self.load = load
        self.ttl = ttl
        self._known: dict[str, tuple[bool, float]] = {}
        self._loading: dict[str, asyncio.Future[bool | None]] = {}

    def set(self, client_id: str, enabled: bool) -> None:
        """This replica's own change takes effect at once; the others see it within `ttl`."""
        self._known[client_id] = (enabled, time.monotonic())

    async def enabled(self, client_id: str) -> bool:
        known = self._known.get(client_id)
        now = time.monotonic()
        if known is not None and now - known[1] < self.ttl:
            return known[0]
        pending = self._loading.get(client_id)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._loading[client_id] = pending
            try:
                value = await self.load(client_id)
                pending.set_result(value)
            except Exception as exc:
                pending.set_exception(exc)
                pending.exception()  # retrieved here; waiters re-raise it
            finally:
                del self._loading[client_id]
        try:
            value = await asyncio.shield(pending)
        except Exception as exc:
            if known is not None:  # the database is briefly away: the last answer stands
                log.warning("client_status_stale", client_id=client_id, error=str(exc)[:200])
                return known[0]
            raise ServiceUnavailable("The gateway cannot check the client right now; retry shortly.") from exc
        enabled = bool(value)
        if len(self._known) >= MAX_CACHED:
            self._known.clear()
        self._known[client_id] = (enabled, time.monotonic())
        return enabled
