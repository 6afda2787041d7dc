"""Parents: register and log in with phone and password, a `parent` token, lock-out."""

from __future__ import annotations

import uuid
from typing import Any

import jwt

from tests.gateway.conftest import Gateway, start_gateway
from tests.support import DatabaseFactory

PHONE = "13800138000"


async def test_a_parent_registers_and_logs_in_for_a_parent_token(gw: Gateway) -> None:
    family = str(uuid.uuid4())
    registered = await gw.client.post(
        "/v1/auth/parents/register", json={"phone": PHONE, "password": "correct horse", "family_id": family}
    )
    assert registered.status_code == 201, registered.text
    claims = jwt.decode(registered.json()["access_token"], options={"verify_signature": False})
    assert claims["kind"] == "parent" and claims["scope"] == "parent" and claims["family_id"] == family

    login = await gw.client.post("/v1/auth/parents/login", json={"phone": PHONE, "password": "correct horse"})
    assert login.status_code == 200 and login.json()["scope"] == "parent"
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    # A parent reads public records and nothing of the registry's own.
    assert (await gw.client.get("/v1/public/facilities", headers=headers)).status_code == 200
    assert (await gw.client.get("/v1/facilities", headers=headers)).status_code == 403


async def test_the_family_link_is_optional_and_a_phone_registers_once(gw: Gateway) -> None:
    first = await gw.client.post("/v1/auth/parents/register", json={"phone": PHONE, "password": "12345678"})
    assert first.status_code == 201
    assert "family_id" not in jwt.decode(first.json()["access_token"], options={"verify_signature": False})
    again = await gw.client.post("/v1/auth/parents/register", json={"phone": PHONE, "password": "87654321"})
    assert again.status_code == 409


async def test_registration_names_every_bad_field(gw: Gateway) -> None:
    response = await gw.client.post(
        "/v1/auth/parents/register", json={"phone": "12345", "password": "short", "family_id": "x"}
    )
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"phone", "password", "family_id"}


async def test_repeated_wrong_passwords_lock_the_account(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    async with start_gateway(databases=databases, keys=keys, parent_max_failures=3) as gw:
        await gw.client.post("/v1/auth/parents/register", json={"phone": PHONE, "password": "right-password"})
        wrong = {"phone": PHONE, "password": "wrong-password"}
        codes = [(await gw.client.post("/v1/auth/parents/login", json=wrong)).status_code for _ in range(3)]
        assert codes == [401, 401, 401]
        locked = await gw.client.post(
            "/v1/auth/parents/login", json={"phone": PHONE, "password": "right-password"}
        )
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 800
        unknown = await gw.client.post(
            "/v1/auth/parents/login", json={"phone": "13900000000", "password": "whatever"}
        )
        assert unknown.status_code == 401
        assert (
            unknown.json()["detail"]
            == (
                await gw.client.post("/v1/auth/parents/login", json={"phone": "13700000000", "password": "x"})
            ).json()["detail"]
        )


async def test_a_right_password_resets_the_failure_count(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    async with start_gateway(databases=databases, keys=keys, parent_max_failures=2) as gw:
        await gw.client.post("/v1/auth/parents/register", json={"phone": PHONE, "password": "right-password"})
        wrong = {"phone": PHONE, "password": "wrong-password"}
        right = {"phone": PHONE, "password": "right-password"}
        for _ in range(3):
            assert (await gw.client.post("/v1/auth/parents/login", json=wrong)).status_code == 401
            assert (await gw.client.post("/v1/auth/parents/login", json=right)).status_code == 200
