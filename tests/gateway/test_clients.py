"""Clients and their tokens: secret rotation, disabling, and every way a token can be wrong."""

from __future__ import annotations

import time
from typing import Any

import jwt
from sqlalchemy import update

from gateway.models import ApiClient
from gateway.service import TOKEN_AUDIENCE, TOKEN_ISSUER
from tests.conftest import facility_body
from tests.gateway.conftest import Gateway, start_gateway
from tests.support import DatabaseFactory, eventually


def forged(
    keys: dict[str, Any], *, kid: str = "test1", key: str | None = None, **claims: Any
) -> dict[str, str]:
    now = int(time.time())
    body = {
        "iss": TOKEN_ISSUER,
        "aud": TOKEN_AUDIENCE,
        "sub": "admin",
        "iat": now,
        "exp": now + 300,
        "kind": "admin",
        "scope": "admin",
    }
    body.update(claims)
    token = jwt.encode(body, key or keys["jwt_keys"]["test1"], algorithm="HS256", headers={"kid": kid})
    return {"Authorization": f"Bearer {token}"}


async def test_a_rotated_secret_overlaps_with_the_new_one_until_the_grace_ends(gw: Gateway) -> None:
    created = await gw.new_client(name="卫健委", kind="bureau", bureau="HEALTH", scopes=["registry:read"])
    client_id, old = created["client_id"], created["client_secret"]
    rotated = await gw.client.post(f"/v1/admin/clients/{client_id}/rotate-secret", headers=await gw.admin())
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["client_secret"]
    assert new != old and rotated.json()["previous_secret_expires_at"]

    assert (await gw.token_response(client_id, old)).status_code == 200
    assert (await gw.token_response(client_id, new)).status_code == 200

    # A second rotation with no grace: only the newest secret works.
    again = await gw.client.post(
        f"/v1/admin/clients/{client_id}/rotate-secret", json={"grace_seconds": 0}, headers=await gw.admin()
    )
    newest = again.json()["client_secret"]
    assert (await gw.token_response(client_id, old)).status_code == 401
    assert (await gw.token_response(client_id, new)).status_code == 401
    assert (await gw.token_response(client_id, newest)).status_code == 200


async def test_rotation_is_for_admins_and_known_clients(gw: Gateway) -> None:
    reader = await gw.bureau()
    assert (await gw.client.post("/v1/admin/clients/x/rotate-secret", headers=reader)).status_code == 403
    missing = await gw.client.post("/v1/admin/clients/ghost/rotate-secret", headers=await gw.admin())
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    bad = await gw.client.post(
        "/v1/admin/clients/ghost/rotate-secret", json={"grace_seconds": -1}, headers=await gw.admin()
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "grace_seconds"


async def test_disabling_a_client_refuses_its_existing_tokens(gw: Gateway) -> None:
    created = await gw.new_client(name="临时", kind="bureau", bureau="CIVIL", scopes=["registry:read"])
    headers = {"Authorization": f"Bearer {await gw.token(created['client_id'], created['client_secret'])}"}
    assert (await gw.client.get("/v1/facilities", headers=headers)).status_code == 200

    await gw.client.delete(f"/v1/admin/clients/{created['client_id']}", headers=await gw.admin())

    refused = await gw.client.get("/v1/facilities", headers=headers)
    assert refused.status_code == 401
    assert "disabled" in refused.json()["detail"]


async def test_another_replica_refuses_a_disabled_clients_token_within_its_cache_time(
    gw: Gateway, databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    created = await gw.new_client(name="临时", kind="bureau", bureau="CIVIL", scopes=["registry:read"])
    headers = {"Authorization": f"Bearer {await gw.token(created['client_id'], created['client_secret'])}"}
    async with start_gateway(
        databases=databases,
        keys=keys,
        services=gw.services,
        database_url=gw.database_url,
        client_cache_seconds=0.5,
    ) as replica:
        assert (await replica.client.get("/v1/facilities", headers=headers)).status_code == 200
        # Disabled straight in the shared database, as another replica's admin call would.
        async with gw.app.state.sessionmaker() as session, session.begin():
            await session.execute(
                update(ApiClient).where(ApiClient.client_id == created["client_id"]).values(enabled=False)
            )

        async def refused() -> bool:
            return (await replica.client.get("/v1/facilities", headers=headers)).status_code == 401

        await eventually(refused)


async def test_an_expired_token_is_refused(gw: Gateway, keys: dict[str, Any]) -> None:
    past = int(time.time()) - 120
    response = await gw.client.get("/v1/facilities", headers=forged(keys, iat=past - 900, exp=past))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_token_signed_with_another_key_is_refused(gw: Gateway, keys: dict[str, Any]) -> None:
    other = "x" * 48
    assert (await gw.client.get("/v1/facilities", headers=forged(keys, key=other))).status_code == 401
    unknown_kid = forged(keys, kid="old-key", key=other)
    assert (await gw.client.get("/v1/facilities", headers=unknown_kid)).status_code == 401
    # The forger's favourite: no signature at all.
    unsigned = jwt.encode(
        {"sub": "admin", "aud": TOKEN_AUDIENCE, "iss": TOKEN_ISSUER}, None, algorithm="none"
    )
    headers = {"Authorization": f"Bearer {unsigned}"}
    assert (await gw.client.get("/v1/facilities", headers=headers)).status_code == 401
    # And the well-signed control passes, so the refusals above are about the key.
    assert (await gw.client.get("/v1/facilities", headers=forged(keys))).status_code == 200


async def test_a_token_for_another_audience_or_issuer_is_refused(gw: Gateway, keys: dict[str, Any]) -> None:
    assert (
        await gw.client.get("/v1/facilities", headers=forged(keys, aud="cradle-internal"))
    ).status_code == 401
    assert (
        await gw.client.get("/v1/facilities", headers=forged(keys, iss="someone-else"))
    ).status_code == 401


async def test_a_token_of_a_client_that_does_not_exist_is_refused(gw: Gateway, keys: dict[str, Any]) -> None:
    ghost = forged(keys, sub="bureau-ghost", kind="bureau", bureau="EDU", scope="registry:read")
    assert (await gw.client.get("/v1/facilities", headers=ghost)).status_code == 401


async def test_a_missing_scope_is_refused_at_the_gateway(gw: Gateway) -> None:
    guidance_only = await gw.headers_for(name="家长 App", kind="app", scopes=["guidance:read"])
    response = await gw.client.get("/v1/facilities", headers=guidance_only)
    assert response.status_code == 403
    assert "registry:read" in response.json()["detail"]
    assert (await gw.client.get("/v1/bans/x", headers=guidance_only)).status_code == 403
    assert (await gw.client.get("/v1/audit", headers=guidance_only)).status_code == 403


async def test_an_unknown_scope_grants_nothing(gw: Gateway, keys: dict[str, Any]) -> None:
    headers = forged(keys, sub="admin", kind="bureau", bureau="EDU", scope="registry:everything root")
    assert (await gw.client.get("/v1/facilities", headers=headers)).status_code == 403
    assert (await gw.client.post("/v1/facilities", json=facility_body(), headers=headers)).status_code == 403
    refused = await gw.client.post(
        "/v1/admin/clients",
        json={"name": "x", "kind": "app", "scopes": ["registry:everything"]},
        headers=await gw.admin(),
    )
    assert refused.status_code == 422


async def test_a_malformed_authorization_header_is_401(gw: Gateway) -> None:
    for value in ("Basic YWRtaW46eA==", "Bearer", "Bearer ", "Bearer a.b.c", "Bearer \u00ff\u00fe"):
        response = await gw.client.get("/v1/facilities", headers={"Authorization": value.encode("latin-1")})
        assert response.status_code == 401, value
