"""The gateway's database pool is sized by its settings, as every service's is: an operator fits
all processes of all replicas into PostgreSQL's max_connections."""

from __future__ import annotations

from typing import Any

from tests.gateway.conftest import start_gateway
from tests.support import DatabaseFactory


async def test_the_pool_is_the_settings_size(databases: DatabaseFactory, keys: dict[str, Any]) -> None:
    async with start_gateway(databases=databases, keys=keys, db_pool_size=3, db_max_overflow=1) as gw:
        pool = gw.app.state.engine.pool
        assert (pool.size(), pool._max_overflow) == (3, 1)
        assert (await gw.client.get("/healthz")).status_code == 200
