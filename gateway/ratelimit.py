"""Token buckets per client: in this process by default, in Redis (one atomic script per call) when
`REDIS_URL` is set, so several gateway replicas share one bucket per client. The same buckets, keyed
by address and account, guard sign-in (SignInGuard)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

import structlog

from gateway.config import RateLimit, SignInLimits
from gateway.errors import TooManyRequests
from shared.errors import ServiceUnavailable

log = structlog.get_logger("cradle.gateway.ratelimit")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the bucket is full again
    retry_after: int  # until the next request would pass (0 when allowed)

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_seconds).encode()),
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
    )


class Limiter(Protocol):
    async def take(self, key: str, limit: RateLimit) -> Decision: ...

    async def close(self) -> None: ...


class LocalLimiter:
    """Buckets in this process's memory: `{key: (tokens, last refill)}`."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    async def take(self, key: str, limit: RateLimit) -> Decision:
        return self.take_now(key, limit)

    def take_now(self, key: str, limit: RateLimit) -> Decision:
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - last) * limit.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        if len(self._buckets) >= self.max_keys and key not in self._buckets:
            self._buckets.clear()  # a bound: forgetting buckets only ever lets callers through
        self._buckets[key] = (tokens, now)
        return _decide(tokens, allowed, limit)

    async def close(self) -> None:
        return None


# KEYS[1] bucket; ARGV rate, burst. Redis's own clock, so replicas with skewed clocks agree.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
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

    async def take(self, key: str, limit: RateLimit) -> Decision:
        try:
            allowed, tokens = await self.script(keys=[self.prefix + key], args=[limit.rate, limit.burst])
        except Exception as exc:  # Redis away: keep limiting, per process
            now = time.monotonic()
            if now - self._warned_at > 10:
                self._warned_at = now
                log.warning("ratelimit_redis_unavailable", error=f"{type(exc).__name__}: {exc}"[:200])
            return self.fallback.take_now(key, limit)
        return _decide(float(tokens), bool(int(allowed)), limit)

    async def close(self) -> None:
        await self.redis.aclose()


def make_limiter(redis_url: str | None, *, prefix: str) -> Limiter:
    return RedisLimiter(redis_url, prefix=prefix) if redis_url else LocalLimiter()


class SignInGuard:
    """What stands before every password and client-secret check: the sign-in buckets (a refusal
    costs a dictionary or Redis lookup, never argon2) and a bounded pool for the argon2 work itself.
    Built in the gateway's lifespan over the same limiter as the per-client buckets."""

    def __init__(self, limiter: Limiter, limits: SignInLimits, *, workers: int, queue: int) -> None:
        self.limiter = limiter
        self.limits = limits
        self.capacity = workers + queue
        self.in_flight = 0
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")

    async def admit(self, *, address: str, account: str | None) -> None:
        """TooManyRequests (with Retry-After) when the address, or the account from this address, or the
        account from everywhere has tried too often. `account` is a client id or a phone's keyed hash
        (never the number: the keys may live in Redis); None for attempts that name no account."""
        checks = [(f"signin:ip:{address}", self.limits.per_address)]
        if account is not None:
            checks += [
                (f"signin:account-ip:{account}|{address}", self.limits.per_account_address),
                (f"signin:account:{account}", self.limits.per_account),
            ]
        for key, limit in checks:
            decision = await self.limiter.take(key, limit)
            if not decision.allowed:
                raise TooManyRequests(
                    f"Too many sign-in attempts; retry in {decision.retry_after} s.",
                    headers={"Retry-After": str(decision.retry_after)},
                )

    async def run(self, work: Callable[..., T], /, *args: object) -> T:
        """`work(*args)` on the argon2 pool. Past `workers + queue` attempts in flight the next is
        refused at once (503): waiting in an unbounded queue behind a flood of guesses is what would
        make a legitimate client time out."""
        if self.in_flight >= self.capacity:
            raise ServiceUnavailable("Too many sign-ins at once; retry shortly.", retry_after=1)
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)
        finally:
            self.in_flight -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
