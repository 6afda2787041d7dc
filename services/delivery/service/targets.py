"""Where a webhook may point. https:// only (http://127.0.0.1 when a setting allows it, for tests
and demos); never a private, loopback, link-local or otherwise non-public address unless inside an
allow-listed network. Checked when subscribing and again on every connection, after resolving the
name, and the connection goes to the address that was checked: a name that resolves to a public
address at subscribe time and to 10.0.0.1 later (DNS rebinding) gets nothing."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.delivery.errors import UnsafeTarget

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK_HOST = "127.0.0.1"


@dataclass(frozen=True)
class TargetPolicy:
    allow_http_loopback: bool
    allowed_networks: tuple[IPNetwork, ...]

    @classmethod
    def of(cls, *, allow_http_loopback: bool, allowed_networks: list[str]) -> TargetPolicy:
        return cls(
            allow_http_loopback=allow_http_loopback,
            allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks),
        )

    def allows(self, address: IPAddress) -> bool:
        if any(address in network for network in self.allowed_networks):
            return True
        if self.allow_http_loopback and address == ipaddress.ip_address(LOOPBACK_HOST):
            return True
        return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class Target:
    """A checked URL: connect to `address`, and speak to `host` (Host header, TLS server name)."""

    scheme: str
    host: str
    port: int
    path: str
    address: str

    @property
    def connect_url(self) -> str:
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def parse(url: str, policy: TargetPolicy) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an acceptable URL, or UnsafeTarget naming why."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"not a URL: {exc}") from None
    host = (parts.hostname or "").lower()
    if not host.isascii():  # one spelling for the resolver, the Host header and the TLS name
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise UnsafeTarget("the host is not a valid name") from None
    if parts.username or parts.password:
        raise UnsafeTarget("credentials in the URL are refused; authenticate the sender by its signature")
    if not host:
        raise UnsafeTarget("needs a host")
    if parts.fragment:
        raise UnsafeTarget("a fragment is never sent; leave it out")
    if parts.scheme == "http":
        if not (policy.allow_http_loopback and host == LOOPBACK_HOST):
            raise UnsafeTarget("must be https://")
    elif parts.scheme != "https":
        raise UnsafeTarget("must be https://")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path


async def resolve(url: str, policy: TargetPolicy) -> Target:
    """Resolve and check every address the name has (one bad one refuses the URL: which one a client
    gets is the resolver's choice); connect to the first."""
    scheme, host, port, path = parse(url, policy)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), 5
            )
        except (OSError, TimeoutError) as exc:
            raise UnsafeTarget(f"{host} does not resolve: {exc}") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        if not addresses:
            raise UnsafeTarget(f"{host} does not resolve")
    refused = [str(a) for a in addresses if not policy.allows(a)]
    if refused:
        raise UnsafeTarget(f"{host} resolves to {', '.join(refused)}, which is not a public address")
    return Target(scheme=scheme, host=host, port=port, path=path, address=str(addresses[0]))


class ResolvedTargets:
    """`resolve` remembered per URL for a few seconds: the sender's attempts to one subscription
    need not each ask the resolver. What is remembered is the checked address, and the connection
    goes to it, so a name that turns private is refused at most `seconds` later, and never
    connected to."""

    def __init__(self, policy: TargetPolicy, *, seconds: float = 5.0, size: int = 10_000) -> None:
        self.policy = policy
        self.seconds = seconds
        self.size = size
        self._known: dict[str, tuple[float, Target]] = {}

    def known(self, url: str) -> Target | None:
        """The URL's target if checked within `seconds` (the sender asks this first: no coroutine
        for what is nearly always remembered)."""
        known = self._known.get(url)
        if known is not None and time.monotonic() - known[0] < self.seconds:
            return known[1]
        return None

    async def resolve(self, url: str) -> Target:
        now = time.monotonic()
        known = self._known.get(url)
        if known is not None and now - known[0] < self.seconds:
            return known[1]
        target = await resolve(url, self.policy)
        if len(self._known) >= self.size:
            self._known.clear()
        self._known[url] = (now, target)
        return target
