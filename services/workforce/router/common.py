"""What workforce's routers share: the scopes a caller needs, the year and paging queries.

Replies to POSTs are remembered under their Idempotency-Key (`idem.respond`). POSTs that carry an
ID number (practitioners, bans, ban checks) take no key: their request hash would be a plain hash
of the number, and they are idempotent by themselves (a repeat is a 409 naming the first record).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from services.workforce.service import bans
from shared.identity import Identity, scope_guard
from shared.pagination import PageParams, page_params

Reader = Annotated[Identity, scope_guard("workforce:read")]
Writer = Annotated[Identity, scope_guard("workforce:write")]


async def ban_authority(caller: Annotated[Identity, scope_guard("workforce:ban")]) -> Identity:
    """The scope and an EDU or POLICE bureau client: 403 before any ban is looked up."""
    bans.require_ban_authority(caller)
    return caller


Banner = Annotated[Identity, Depends(ban_authority)]
Year = Annotated[int, Query(ge=2000, le=2100, description="calendar year")]
PageDep = Annotated[PageParams, Depends(page_params)]
