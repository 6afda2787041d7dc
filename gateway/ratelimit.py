"""Token buckets per client: in this process by default, in Redis (one atomic script per call) when
`REDIS_URL` is set, so several gateway replicas share one bucket per client. The same buckets, keyed
by address and account and spent by failures only, guard sign-in (gateway/sign_in.py)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import structlog

from gateway.config import RateLimit

log = structlog.get_logger("cradle.gateway.ratelimit")
# take: spend a token if there is one (a request); peek: is there one, spending nothing; charge: spend
# one even from an empty bucket, down to -burst (a failure that happened counts, however many ran at once).
Mode = Literal["take", "peek", "charge"]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the bucket is full again
    retry_after: int  # until the next request would pass (0 when allowed)
    window_seconds: int  # an empty bucket refills completely in this long

    def headers(self, policy: str) -> list[tuple[bytes, bytes]]:
        """The IETF draft's fields (draft-ietf-httpapi-ratelimit-headers): the policy, a bucket of
        `q` requests refilled in `w` seconds, and what is left of it, `r` requests, full in `t` s."""
        out = [
            (b"ratelimit-policy", f'"{policy}";q={self.limit};w={self.window_seconds}'.encode()),
            (b"ratelimit", f'"{policy}";r={self.remaining};t={self.reset_seconds}'.encode()),
        ]
        if not self.allowed:
            out.append((b"retry-after", str(self.retry_after).encode()))
        return out


def _decide(tokens: float, allowed: bool, limit: RateLimit) -> Decision:
    missing = limit.burst - tokens
    return Decision(
        allowed=allowed,
        limit=limit.burst,
        remaining=max(0, int(tokens)),
        reset_seconds=max(0, math.ceil(missing / limit.rate)),
        retry_after=0 if allowed else max(1, math.ceil((1 - tokens) / limit.rate)),
        window_seconds=max(1, math.ceil(limit.burst / limit.rate)),
    )


class Limiter(Protocol):
    async def take(self, key: str, limit: RateLimit, mode: Mode = "take") -> Decision: ...

    async def close(self) -> None: ...


class LocalLimiter:
    """Buckets in this process's memory: `{key: (tokens, last refill)}`."""

    def __init__(self, max_keys: int = 100_000, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_keys = max_keys
        self.clock = clock  # seconds; a test's own clock makes refills exact
        self._buckets: dict[str, tuple[float, float]] = {}

    async def take(self, key: str, limit: RateLimit, mode: Mode = "take") -> Decision:
        return self.take_now(key, limit, mode)

    def take_now(self, key: str, limit: RateLimit, mode: Mode = "take") -> Decision:
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - last) * limit.rate)
        allowed = tokens >= 1.0
        if mode == "peek":
            return _decide(tokens, allowed, limit)  # nothing stored: a look creates no bucket
        if mode == "charge":
            tokens = max(-float(limit.burst), tokens - 1.0)
        elif allowed:
            tokens -= 1.0
        if len(self._buckets) >= self.max_keys and key not in self._buckets:
            self._buckets.clear()  # a bound: forgetting buckets only ever lets callers through
        self._buckets[key] = (tokens, now)
        return _decide(tokens, allowed, limit)

    async def close(self) -> None:
        return None


# KEYS[1] bucket; ARGV rate, burst, mode (Mode). Redis's own clock, so replicas with skewed clocks agree.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local mode = ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= 1 then allowed = 1 end
if mode == 'peek' then return {allowed, tostring(tokens)} end
if mode == 'charge' then tokens = math.max(-burst, tokens - 1)
elseif allowed == 1 then tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class RedisLimiter:
    """The same bucket, kept in Redis and updated by one Lua script (atomic per call). If Redis is
    unreachable the process falls back to its own buckets rather than refusing every call."""

    def __init__(self, url: str, *, prefix: str = "cradle:ratelimit:") -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.script = self.redis.register_script(TOKEN_BUCKET_LUA)
        self.prefix = prefix
        self.fallback = LocalLimiter()
        self._warned_at = 0.0

    async def take(self, key: str, limit: RateLimit, mode: Mode = "take") -> Decision:
        try:
            allowed, tokens = await self.script(
                keys=[self.prefix + key], args=[limit.rate, limit.burst, mode]
            )
        except Exception as exc:  # Redis away: keep limiting, per process
            now = time.monotonic()
            if now - self._warned_at > 10:
                self._warned_at = now
                log.warning("ratelimit_redis_unavailable", error=f"{type(exc).__name__}: {exc}"[:200])
            return self.fallback.take_now(key, limit, mode)
        return _decide(float(tokens), bool(int(allowed)), limit)

    async def close(self) -> None:
        await self.redis.aclose()


def make_limiter(redis_url: str | None, *, prefix: str) -> Limiter:
    return RedisLimiter(redis_url, prefix=prefix) if redis_url else LocalLimiter()
