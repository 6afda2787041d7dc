"""The HTTP kit every service's routers use: path and query ids, If-Match and ETag, scope
dependencies, and the idempotent POST (shared/idempotency.py). A refusal that must not raise is
rendered by `shared.errors.error_response`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Query, params

from shared.errors import Forbidden, StaleVersion
from shared.identity import AuthenticatedDep, Identity

# Every id in Cradle is a UUID; a path or query naming anything else is a 422, never a lookup.
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
IdPath = Annotated[str, Path(pattern=UUID_PATTERN, description="a UUID")]
IdQuery = Annotated[str, Query(pattern=UUID_PATTERN, description="a UUID")]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=200)]


def etag(version: int) -> dict[str, str]:
    """The `ETag` header of a versioned record: its version, quoted."""
    return {"ETag": f'"{version}"'}


def check_version(version: int, if_match: str | None, *, what: str = "record") -> None:
    """`If-Match: "<version>"`: a change made from an older version is a 412 naming the current
    one, not a silent overwrite (absent or `*`: any version)."""
    if if_match is None:
        return
    wanted = {tag.strip().removeprefix("W/").strip('"') for tag in if_match.split(",")}
    if "*" not in wanted and str(version) not in wanted:
        raise StaleVersion(
            f"The {what} is at version {version}; reload it and apply your change again.",
            current_version=version,
        )


def any_scope(*scopes: str) -> params.Depends:
    """The caller, if it holds any one of `scopes` (`shared.identity.scope_guard` for one)."""

    async def guard(caller: AuthenticatedDep) -> Identity:
        if not any(caller.has_scope(scope) for scope in scopes):
            raise Forbidden("This needs one of the scopes: " + ", ".join(f"`{s}`" for s in scopes) + ".")
        return caller

    guard.__name__ = "requires_" + "_or_".join(s.replace(":", "_") for s in scopes)
    return Depends(guard)
