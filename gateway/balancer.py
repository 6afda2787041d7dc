"""The replicas of each service: which one a request goes to, and whether a failed request may go
to another.

A service's setting (`GATEWAY_<SERVICE>_URL`) is one base URL or several, comma-separated. Each
request goes to the replica with the fewest requests outstanding from this gateway, ties taken in
turn (so an idle gateway still alternates). A replica that refuses a connection is passed over for
`eject_seconds` (passive health: no probes, the requests themselves are the probes); when every
replica is passed over, they are all tried anyway, since a wrong guess costs one refused connect."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping

from gateway.upstream import IDEMPOTENT, UpstreamError, UpstreamRefused


def split_bases(setting: str) -> tuple[str, ...]:
    """`http://a:1, http://b:2/` → ("http://a:1", "http://b:2")."""
    return tuple(part.strip().rstrip("/") for part in setting.split(",") if part.strip())


class Replica:
    __slots__ = ("base", "down_until", "outstanding")

    def __init__(self, base: str) -> None:
        self.base = base
        self.outstanding = 0
        self.down_until = 0.0


class Replicas:
    """One service's replicas, as configured by one setting's value."""

    def __init__(self, setting: str, *, eject_seconds: float) -> None:
        self.setting = setting
        self.replicas = tuple(Replica(base) for base in split_bases(setting))
        if not self.replicas:
            raise ValueError(f"no upstream URL in {setting!r}")
        self.eject_seconds = eject_seconds
        self._turn = 0

    def order(self) -> list[Replica]:
        """Every replica, the one to try first first: the healthy ones by fewest outstanding
        (ties in turn), then the passed-over ones."""
        if len(self.replicas) == 1:
            return list(self.replicas)
        now = time.monotonic()
        self._turn = (self._turn + 1) % len(self.replicas)
        rotated = self.replicas[self._turn :] + self.replicas[: self._turn]
        healthy = sorted((r for r in rotated if r.down_until <= now), key=lambda r: r.outstanding)
        return healthy + [r for r in rotated if r.down_until > now]

    def refused(self, replica: Replica) -> None:
        replica.down_until = time.monotonic() + self.eject_seconds


def may_retry(method: str, body_replayable: bool, error: UpstreamError) -> bool:
    """Whether a failed request may go to another replica with the effect of once: nothing reached
    the first (its connection was refused), or the method is idempotent and its body can be sent
    again. A timeout is never retried: the first replica may still be acting on it."""
    if isinstance(error, UpstreamRefused):
        return True
    return method in IDEMPOTENT and body_replayable and error.reason == "connect"


class Balancer:
    """Every service's replicas. Built from the gateway's `upstreams` mapping (service → setting),
    which tests may rewrite at run time: a changed setting is read again at the next request."""

    def __init__(self, upstreams: Mapping[str, str], *, eject_seconds: float) -> None:
        self.upstreams = upstreams
        self.eject_seconds = eject_seconds
        self._replicas: dict[str, Replicas] = {}

    def of(self, service: str) -> Replicas:
        setting = self.upstreams[service]
        replicas = self._replicas.get(service)
        if replicas is None or replicas.setting != setting:
            replicas = self._replicas[service] = Replicas(setting, eject_seconds=self.eject_seconds)
        return replicas

    def bases(self, service: str) -> tuple[str, ...]:
        return tuple(replica.base for replica in self.of(service).replicas)

    def services(self) -> Iterator[str]:
        return iter(self.upstreams)


def replayable(body: bytes | AsyncIterator[bytes] | None) -> bool:
    return not isinstance(body, AsyncIterator)
