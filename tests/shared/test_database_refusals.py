"""PostgreSQL refusing a connection for want of resources (class 53: too many connections, out of
memory, disk full) is a 503 to retry, like a database that went away, never a 500. Provoked for
real: a role whose connection limit is 0."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared.db import make_engine
from shared.errors import install_error_handlers
from tests.support import PG_ADMIN_URL, postgres_reachable


@pytest.fixture
async def refused_url() -> AsyncIterator[str]:
    if not await postgres_reachable():
        pytest.skip("PostgreSQL is not reachable")
    role = f"cradle_refused_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0')
        yield make_url(PG_ADMIN_URL).set(username=role).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


async def test_too_many_connections_is_a_503(refused_url: str) -> None:
    engine = make_engine(refused_url)
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/count")
    async def count() -> int:
        async with engine.connect() as connection:
            return int((await connection.execute(text("SELECT 1"))).scalar_one())

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            response = await client.get("/count")
    finally:
        await engine.dispose()
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/unavailable"
