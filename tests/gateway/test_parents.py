"""Parents: register and log in with phone and password, a `parent` token, lock-out that holds
under parallel attempts and spares the owner where the owner signs in, sign-in limits that failures
spend and successes do not, the known lane, phone numbers never stored in clear."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from httpx import ASGITransport
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from cradle.migrations import downgrade, upgrade
from gateway.parents import PHONE as PHONE_CONTEXT
from shared.db import make_engine
from shared.pii import Encrypted, KeyedHasher, PiiCipher, decode_key, new_key
from shared.pii_keys import LostKeys
from tests.gateway.conftest import Gateway, start_gateway
from tests.gateway.test_sign_in import hold_slow_guesses, started
from tests.support import DatabaseFactory

PHONE = "13800138000"
OWNER = "198.51.100.7"  # where the parent registered: a known address for the account


def from_address(gw: Gateway, address: str) -> httpx.AsyncClient:
    transport = ASGITransport(app=gw.app, client=(address, 4000))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


async def register_from_owner(gw: Gateway, password: str = "right-password") -> None:
    async with from_address(gw, OWNER) as owner:
        body = {"phone": PHONE, "password": password}
        registered = await owner.post("/v1/auth/parents/register", json=body)
        assert registered.status_code == 201, registered.text


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
        await register_from_owner(gw)
        wrong = {"phone": PHONE, "password": "wrong-password"}
        codes = [(await gw.client.post("/v1/auth/parents/login", json=wrong)).status_code for _ in range(3)]
        assert codes == [401, 401, 401]
        right = {"phone": PHONE, "password": "right-password"}
        locked = await gw.client.post("/v1/auth/parents/login", json=right)
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 800
        async with from_address(gw, "192.0.2.30") as newcomer:  # locked from any address not yet known
            assert (await newcomer.post("/v1/auth/parents/login", json=right)).status_code == 429
        # Strangers' guesses do not lock the owner out where the owner signs in (OWASP's device lane).
        async with from_address(gw, OWNER) as owner:
            assert (await owner.post("/v1/auth/parents/login", json=right)).status_code == 200
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
        await register_from_owner(gw)
        wrong = {"phone": PHONE, "password": "wrong-password"}
        right = {"phone": PHONE, "password": "right-password"}
        for n in range(3):  # each round from an address not yet known, where attempts are counted
            async with from_address(gw, f"192.0.2.{n + 1}") as phone:
                assert (await phone.post("/v1/auth/parents/login", json=wrong)).status_code == 401
                assert (await phone.post("/v1/auth/parents/login", json=right)).status_code == 200


GENEROUS = {  # sign-in buckets out of the way: these tests are about the lock-out itself
    "per_address": {"rate": 1000, "burst": 10_000},
    "per_account_address": {"rate": 1000, "burst": 10_000},
    "per_account": {"rate": 2000, "burst": 20_000},
}


async def test_forty_parallel_wrong_passwords_cannot_get_round_the_lock(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    async with start_gateway(
        databases=databases, keys=keys, parent_max_failures=5, sign_in_limits=GENEROUS, sign_in_hash_queue=40
    ) as gw:
        await register_from_owner(gw)
        hasher = gw.app.state.hasher
        verified = 0
        real_verify = hasher.verify

        def counting_verify(secret_hash: str | None, secret: str) -> bool:
            nonlocal verified
            verified += 1
            return real_verify(secret_hash, secret)

        hasher.verify = counting_verify
        wrong = {"phone": PHONE, "password": "wrong-password"}
        phones = [from_address(gw, f"203.0.113.{n + 1}") for n in range(40)]  # forty strangers at once
        try:
            replies = await asyncio.gather(*(p.post("/v1/auth/parents/login", json=wrong) for p in phones))
        finally:
            for phone in phones:
                await phone.aclose()
        codes = Counter(r.status_code for r in replies)
        # Each attempt is counted before its password is checked: five checks, then the lock.
        assert verified <= 5 and codes[401] == verified and codes[429] == 40 - verified, codes
        assert all(int(r.headers["retry-after"]) > 800 for r in replies if r.status_code == 429)
        locked = await gw.client.post(
            "/v1/auth/parents/login", json={"phone": PHONE, "password": "right-password"}
        )
        assert locked.status_code == 429 and verified <= 5


async def test_sign_in_attempts_are_limited_before_any_password_is_checked(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    limits = {
        "per_address": {"rate": 0.01, "burst": 100},
        "per_account_address": {"rate": 0.01, "burst": 3},
        "per_account": {"rate": 0.02, "burst": 6},
    }
    async with start_gateway(
        databases=databases, keys=keys, parent_max_failures=100, sign_in_limits=limits
    ) as gw:
        await register_from_owner(gw)
        right = {"phone": PHONE, "password": "right-password"}
        async with from_address(gw, OWNER) as owner:  # successes spend nothing: far past every burst
            codes = [(await owner.post("/v1/auth/parents/login", json=right)).status_code for _ in range(8)]
            assert codes == [200] * 8
        wrong = {"phone": PHONE, "password": "wrong-password"}
        codes = [(await gw.client.post("/v1/auth/parents/login", json=wrong)).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        refused = await gw.client.post("/v1/auth/parents/login", json=wrong)
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        # The owner, on an address never seen before, still logs in: the limit was this address's on
        # this account, and one address cannot empty the account's bucket.
        elsewhere = ASGITransport(app=gw.app, client=("192.0.2.99", 4000))
        async with httpx.AsyncClient(transport=elsewhere, base_url="http://gateway") as owner:
            right = await owner.post(
                "/v1/auth/parents/login", json={"phone": PHONE, "password": "right-password"}
            )
            assert right.status_code == 200, right.text


async def test_a_known_parent_is_served_while_strangers_fill_the_general_lane(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    async with start_gateway(
        databases=databases, keys=keys, sign_in_hash_workers=1, sign_in_hash_queue=1
    ) as gw:
        await register_from_owner(gw)
        release = hold_slow_guesses(gw)
        general = gw.app.state.sign_in.general
        strangers = [from_address(gw, f"203.0.113.{n}") for n in range(1, 4)]
        try:
            held = []
            for n, stranger in enumerate(strangers[:2]):
                guess = {"phone": PHONE, "password": f"slow-guess-{n}"}
                held.append(asyncio.create_task(stranger.post("/v1/auth/parents/login", json=guess)))
                await started(general, running=1, waiting=n)
            full = await strangers[2].post(
                "/v1/auth/parents/login", json={"phone": PHONE, "password": "slow-guess-2"}
            )
            assert full.status_code == 503 and int(full.headers["retry-after"]) >= 1
            async with from_address(gw, OWNER) as owner:
                served = await owner.post(
                    "/v1/auth/parents/login", json={"phone": PHONE, "password": "right-password"}
                )
            assert served.status_code == 200, served.text
            assert not held[0].done()
            release.set()
            assert [(await t).status_code for t in held] == [401, 401]
        finally:
            release.set()
            for stranger in strangers:
                await stranger.aclose()


async def test_no_phone_number_is_stored_in_clear(databases: DatabaseFactory, keys: dict[str, Any]) -> None:
    phones = ["13912345678", "15800001111"]
    async with start_gateway(databases=databases, keys=keys) as gw:
        for phone in phones:
            registered = await gw.client.post(
                "/v1/auth/parents/register", json={"phone": phone, "password": "a good password"}
            )
            assert registered.status_code == 201
        login = await gw.client.post(
            "/v1/auth/parents/login", json={"phone": phones[0], "password": "a good password"}
        )
        assert login.status_code == 200
        await gw.audit_settled()
        engine = make_engine(gw.database_url)
        try:
            async with engine.connect() as connection:
                tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
                stored = [
                    str(value)
                    for table in tables
                    for row in (await connection.execute(text(f'SELECT * FROM "{table}"'))).all()
                    for value in row
                    if value is not None
                ]
                sealed = (
                    await connection.execute(
                        text("SELECT phone_key_id, phone_encrypted FROM parent_account ORDER BY created_at")
                    )
                ).all()
        finally:
            await engine.dispose()
        assert stored and not [v for v in stored if any(p in v for p in phones)]
        # Sealed, not lost: the gateway's keys open each number again.
        cipher = gw.app.state.settings.cipher()
        opened = {cipher.decrypt(Encrypted(kid, text_), context=PHONE_CONTEXT) for kid, text_ in sealed}
        assert opened == set(phones)
    if gw.database_url.startswith("sqlite"):  # nor in the file's bytes (free pages, journal)
        path = Path(make_url(gw.database_url).database or "")
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert raw and not any(p.encode() in raw for p in phones)


async def test_the_migration_encrypts_existing_phones_with_the_keys_from_the_environment(
    databases: DatabaseFactory, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await databases.fresh("gateway")
    await asyncio.to_thread(downgrade, "gateway", url, "gateway_0003")  # phones still in clear
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO parent_account (parent_id, phone, password_hash, failed_logins, enabled, "
                    "created_at, updated_at) VALUES ('parent-old', :phone, 'x', 0, true, :now, :now)"
                ),
                {"phone": PHONE, "now": datetime.now(UTC)},
            )
        for suffix in ("KEYS", "ACTIVE_KEY_ID", "HMAC_KEY"):
            monkeypatch.delenv(f"GATEWAY_PII_{suffix}", raising=False)
        with pytest.raises(RuntimeError, match="GATEWAY_PII_KEYS"):  # no keys: refused, nothing changed
            await asyncio.to_thread(upgrade, "gateway", url)
        monkeypatch.setenv("GATEWAY_PII_KEYS", json.dumps({"t1": keys["pii_key"]}))
        monkeypatch.setenv("GATEWAY_PII_ACTIVE_KEY_ID", "t1")
        monkeypatch.setenv("GATEWAY_PII_HMAC_KEY", keys["pii_hmac_key"])
        await asyncio.to_thread(upgrade, "gateway", url)
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT phone_hash, phone_key_id, phone_encrypted FROM parent_account")
                )
            ).one()
    finally:
        await engine.dispose()
    assert row[0] == KeyedHasher(decode_key(keys["pii_hmac_key"], exact=False)).digest(PHONE)
    cipher = PiiCipher({"t1": decode_key(keys["pii_key"])}, "t1")
    assert cipher.decrypt(Encrypted(row[1], row[2]), context=PHONE_CONTEXT) == PHONE


async def test_a_gateway_without_the_key_of_stored_phones_refuses_to_start(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    url = await databases.fresh("gateway")
    async with start_gateway(databases=databases, keys=keys, database_url=url) as gw:
        await register_from_owner(gw)
    # The key file lost and a new key made: the stored numbers would never open again.
    stranger = {"pii_keys": {"k-new": new_key()}, "pii_active_key_id": "k-new"}
    with pytest.raises(LostKeys, match="key id t1, which is not configured"):
        async with start_gateway(databases=databases, keys=keys, database_url=url, **stranger):
            pass
