"""What stands before every password and client-secret check: buckets of failed sign-ins (the
limiter's, gateway/ratelimit.py), and argon2 on two lanes, one for (account, address) pairs that
signed in recently, one for everybody else (OWASP's authentication cheat sheet: limit failures, not
attempts; a lane for known clients)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import structlog

from gateway.config import GatewaySettings, RateLimit, SignInLimits
from gateway.errors import TooManyRequests
from gateway.ratelimit import Limiter, RedisLimiter
from shared.errors import ServiceUnavailable
from shared.i18n import tr

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger("cradle.gateway.sign_in")
T = TypeVar("T")


class KnownPairs:
    """(account, address) pairs that signed in within `ttl` seconds: the known-client lane of OWASP's
    "device cookies", keyed by address because the token endpoint's callers keep no cookies. In this
    process (bounded: the oldest forgotten first, which only moves a pair back to the general lane),
    and in Redis when the limiter has one, so every replica knows a pair one of them served."""

    def __init__(self, *, ttl: float, max_pairs: int, redis: Redis | None = None, prefix: str = "") -> None:
        self.ttl = ttl
        self.max_pairs = max_pairs
        self.redis = redis
        self.prefix = prefix + "signin:known:"
        self._pairs: OrderedDict[str, float] = OrderedDict()  # pair → monotonic expiry, oldest first
        self._warned_at = 0.0

    @staticmethod
    def pair(account: str, address: str) -> str:
        return f"{account}|{address}"

    async def contains(self, account: str, address: str) -> bool:
        pair = self.pair(account, address)
        now = time.monotonic()
        expires = self._pairs.get(pair)
        if expires is not None:
            if expires > now:
                return True
            del self._pairs[pair]
        if self.redis is None:
            return False
        try:
            left_ms = int(await self.redis.pttl(self.prefix + pair))
        except Exception as exc:  # Redis away: what this process knows still counts
            self._warn(exc)
            return False
        if left_ms <= 0:  # -2: no such pair
            return False
        self._keep(pair, now + left_ms / 1000)
        return True

    async def remember(self, account: str, address: str) -> None:
        pair = self.pair(account, address)
        self._keep(pair, time.monotonic() + self.ttl)
        if self.redis is not None:
            try:
                await self.redis.set(self.prefix + pair, b"1", ex=max(1, math.ceil(self.ttl)))
            except Exception as exc:
                self._warn(exc)

    def _keep(self, pair: str, expires: float) -> None:
        self._pairs[pair] = expires
        self._pairs.move_to_end(pair)
        while len(self._pairs) > self.max_pairs:
            self._pairs.popitem(last=False)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 10:
            self._warned_at = now
            log.warning("sign_in_known_pairs_redis_unavailable", error=f"{type(exc).__name__}: {exc}"[:200])


def _lower_priority(nice: int) -> Callable[[], None]:
    """A pool initializer that lowers its thread's CPU priority (Linux: nice is per thread, and the
    threads argon2 starts for its lanes inherit it), so the general lane's hashes yield the cores to
    the known lane's and to the event loop that answers every refusal."""

    def initializer() -> None:
        if not nice or not sys.platform.startswith("linux"):
            return  # elsewhere PRIO_PROCESS would lower the whole process
        thread = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + nice))
        except OSError as exc:  # a sandbox may refuse it: the lane still works, unprioritized
            log.warning("sign_in_lane_priority_unchanged", error=str(exc)[:200])

    return initializer


class Lane:
    """A bounded argon2 pool: `workers` hashes run at once, at most `queue` more wait (in arrival
    order), the rest are refused at once (503): waiting behind a flood of guesses is what would make a
    legitimate client time out. With `one_waiting_per_key`, a key (the general lane's: an address) may
    have one attempt waiting, so a few addresses cannot fill the queue for everybody else."""

    def __init__(
        self, name: str, *, workers: int, queue: int, one_waiting_per_key: bool, nice: int = 0
    ) -> None:
        self.name = name
        self.workers = workers
        self.queue = queue
        self.one_waiting_per_key = one_waiting_per_key
        self.running = 0
        self._waiting: dict[object, asyncio.Future[None]] = {}  # insertion order is arrival order
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"argon2-{name}", initializer=_lower_priority(nice)
        )

    @property
    def in_flight(self) -> int:
        return self.running + len(self._waiting)

    async def run(self, key: str, work: Callable[..., T], /, *args: object) -> T:
        loop = asyncio.get_running_loop()
        if self.running >= self.workers:
            await self._wait_for_a_worker(key if self.one_waiting_per_key else object())
        else:
            self.running += 1
        # The slot is freed when the hash ends, not when the caller leaves: a cancelled request's
        # hash still holds its thread, and the pool must never queue behind it.
        done = self._pool.submit(work, *args)

        def finished(_: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
                loop.call_soon_threadsafe(self._release)

        done.add_done_callback(finished)
        return await asyncio.wrap_future(done)

    async def _wait_for_a_worker(self, key: object) -> None:
        if len(self._waiting) >= self.queue or key in self._waiting:
            raise ServiceUnavailable("Too many sign-ins at once; retry shortly.", retry_after=1)
        turn = asyncio.get_running_loop().create_future()
        self._waiting[key] = turn
        try:
            await turn  # a finishing hash hands its worker over (`_release`)
        except asyncio.CancelledError:
            if self._waiting.get(key) is turn:
                del self._waiting[key]
            elif turn.done() and not turn.cancelled():
                self._release()  # handed a worker as the caller left: pass it on
            raise

    def _release(self) -> None:
        while self._waiting:
            key = next(iter(self._waiting))
            turn = self._waiting.pop(key)
            if not turn.done():
                turn.set_result(None)
                return
        self.running -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    """An attempt the buckets let through: who, from where, and whether the pair is known."""

    address: str
    account: str | None
    known: bool


class SignInGuard:
    """What stands before every password and client-secret check. Failures, not attempts, spend the
    sign-in buckets (so a client signing in often is never limited for it); an attempt from an address,
    or at an account from an address, whose failures emptied its bucket is refused (429) before any
    database read or argon2, at the cost of a dictionary or Redis lookup. argon2 then runs on the known
    lane for pairs that signed in recently, on the general lane (short, fair, 503 past it) for the rest.
    Built in the gateway's lifespan over the same limiter as the per-client buckets."""

    def __init__(
        self, limiter: Limiter, limits: SignInLimits, *, known: KnownPairs, general: Lane, known_lane: Lane
    ) -> None:
        self.limiter = limiter
        self.limits = limits
        self.known = known
        self.general = general
        self.known_lane = known_lane

    @classmethod
    def from_settings(cls, settings: GatewaySettings, limiter: Limiter) -> SignInGuard:
        return cls(
            limiter,
            settings.sign_in_limits,
            known=KnownPairs(
                ttl=settings.sign_in_known_seconds,
                max_pairs=settings.sign_in_known_max_pairs,
                redis=limiter.redis if isinstance(limiter, RedisLimiter) else None,
                prefix=settings.redis_key_prefix,
            ),
            general=Lane(
                "general",
                workers=settings.sign_in_hash_workers,
                queue=settings.sign_in_hash_queue,
                one_waiting_per_key=True,
                nice=settings.sign_in_hash_nice,
            ),
            known_lane=Lane(
                "known",
                workers=settings.sign_in_known_workers,
                queue=settings.sign_in_known_queue,
                one_waiting_per_key=False,
            ),
        )

    def _buckets(self, attempt: SignInAttempt, *, gate: bool) -> list[tuple[str, RateLimit]]:
        address, account = attempt.address, attempt.account
        if account is None:
            return [(f"signin:ip:{address}", self.limits.per_address)]
        own = (f"signin:account-ip:{account}|{address}", self.limits.per_account_address)
        if gate and attempt.known:
            # A known pair answers for its own failures only. The address's and the account's buckets
            # are what strangers empty (a guesser behind the same address, or many addresses at one
            # account); they must not lock out the client that proved itself from here.
            return [own]
        return [
            (f"signin:ip:{address}", self.limits.per_address),
            own,
            (f"signin:account:{account}", self.limits.per_account),
        ]

    async def admit(self, *, address: str, account: str | None) -> SignInAttempt:
        """TooManyRequests (with Retry-After) when failures emptied the bucket of the address, of the
        account from this address, or of the account from everywhere. `account` is a client id or a
        phone's keyed hash (never the number: the keys may live in Redis); None for attempts that name
        no account (registration). Nothing is spent here: `settle` charges a failure."""
        known = account is not None and await self.known.contains(account, address)
        attempt = SignInAttempt(address=address, account=account, known=known)
        for key, limit in self._buckets(attempt, gate=True):
            decision = await self.limiter.take(key, limit, "peek")
            if not decision.allowed:
                raise TooManyRequests(
                    tr("Too many failed sign-ins; retry in {seconds} s.", seconds=decision.retry_after),
                    headers={"Retry-After": str(decision.retry_after)},
                )
        return attempt

    async def run(self, attempt: SignInAttempt, work: Callable[..., T], /, *args: object) -> T:
        """`work(*args)` (argon2) on the attempt's lane; ServiceUnavailable (503) when it is full."""
        if attempt.known:
            return await self.known_lane.run(attempt.address, work, *args)
        return await self.general.run(attempt.address, work, *args)

    async def settle(self, attempt: SignInAttempt, *, succeeded: bool) -> None:
        """A success makes the pair known; a failure spends one token of every bucket of the attempt.
        Attempts let through together may each fail, so a bucket can go below empty (down to -burst):
        they are few (the lanes hold one waiting attempt per address) and the wait grows to match.

        Why one attacker cannot lock an account's owner out from elsewhere: the attacker's failures at
        the account from one address stop when that pair's bucket is empty, and that bucket refills
        more slowly and holds less than the account's (SignInLimits checks both), so the account-wide
        bucket never empties from one address. Many addresses can empty it, which is what it is for
        (a distributed guess at one secret); then still a pair that signed in recently is served."""
        if succeeded:
            if attempt.account is not None:
                await self.known.remember(attempt.account, attempt.address)
            return
        for key, limit in self._buckets(attempt, gate=False):
            await self.limiter.take(key, limit, "charge")

    async def remember(self, *, account: str, address: str) -> None:
        """Make a pair known without a verification here (a registration: it set the password)."""
        await self.known.remember(account, address)

    @property
    def in_flight(self) -> int:
        return self.general.in_flight + self.known_lane.in_flight

    def close(self) -> None:
        self.general.close()
        self.known_lane.close()
