"""Which service serves which public path. Paths reach the service unchanged (API.md)."""

from __future__ import annotations

import re

# Ordered: the first match wins, so the more specific facility sub-resources come first.
ROUTES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), service)
    for pattern, service in (
        (r"^/v1/facilities/[^/]+/(staffing)$", "workforce"),
        (r"^/v1/facilities/[^/]+/(risk)$", "monitoring"),
        (r"^/v1/(divisions|facilities|public|coverage)(/|$)", "registry"),
        (r"^/v1/(practitioners|employments|bans|ban-checks|compliance)(/|$)", "workforce"),
        (r"^/v1/(cameras|cctv-events|alerts|incidents|inspection-plans|inspections)(/|$)", "monitoring"),
        (r"^/v1/(stations|families|home-visits|sessions|resources)(/|$)", "guidance"),
    )
)

# Readable without a token (信息公开).
PUBLIC_GET = re.compile(r"^/v1/(public/.*|divisions)$")


def service_for(path: str) -> str | None:
    for pattern, service in ROUTES:
        if pattern.match(path):
            return service
    return None


def is_public(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") and PUBLIC_GET.match(path) is not None
