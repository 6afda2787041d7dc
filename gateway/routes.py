"""Which service serves which public path, from the route table in the settings. Paths reach the
service unchanged (docs/API.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.config import RouteRule

# Served by the gateway itself (FastAPI routes), never forwarded.
OWN_PREFIXES = ("/v1/auth/", "/v1/admin/", "/v1/audit", "/v1/indicators")
OWN_VIEW = re.compile(r"^/v1/facilities/[^/]+/profile$")  # composed from several services
OWN_DEVICES = re.compile(r"^/v1/facilities/[^/]+/device-credentials(/[^/]+)?$")  # NATS credentials


@dataclass(frozen=True, slots=True)
class Route:
    name: str  # the metrics label: the pattern as configured
    regex: re.Pattern[str]
    service: str
    scopes: frozenset[str]
    public_methods: frozenset[str]


class RouteTable:
    def __init__(self, rules: list[RouteRule]) -> None:
        self.routes = tuple(
            Route(
                name=rule.pattern,
                regex=re.compile(rule.pattern),
                service=rule.service,
                scopes=frozenset(rule.scopes),
                public_methods=frozenset(m.upper() for m in rule.public_methods),
            )
            for rule in rules
        )

    def match(self, path: str) -> Route | None:
        for route in self.routes:
            if route.regex.match(path):
                return route
        return None


def is_own(path: str) -> bool:
    if path.startswith(OWN_PREFIXES):
        return True
    return OWN_VIEW.match(path) is not None or OWN_DEVICES.match(path) is not None
