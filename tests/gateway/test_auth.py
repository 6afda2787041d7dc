"""The gateway's door: client credentials, scopes, public paths, and what it refuses."""

from __future__ import annotations

import jwt

from tests.conftest import ADMIN_SECRET, Stack, facility_body


async def test_client_credentials_give_a_short_lived_bearer_token(stack: Stack) -> None:
    response = await stack.client.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": "admin", "client_secret": ADMIN_SECRET},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert 60 <= body["expires_in"] <= 3600
    assert jwt.get_unverified_header(body["access_token"])["kid"] == "test1"


async def test_a_wrong_secret_or_unknown_client_is_401_without_saying_which(stack: Stack) -> None:
    wrong = await stack.client.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": "admin", "client_secret": "nope"},
    )
    unknown = await stack.client.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": "ghost", "client_secret": "nope"},
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_a_bad_token_request_is_an_oauth_error(stack: Stack) -> None:
    """The token endpoint answers as RFC 6749 §5.2 says (tests/gateway/test_oauth.py has each one)."""
    response = await stack.client.post("/v1/auth/token", data={"grant_type": "password"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_an_operator_client_creates_facilities_it_then_owns(stack: Stack) -> None:
    operator = await stack.headers_for(
        name="小太阳托育连锁", kind="operator", scopes=["registry:read", "registry:write"]
    )
    other = await stack.headers_for(
        name="另一家", kind="operator", scopes=["registry:read", "registry:write"]
    )

    created = await stack.client.post("/v1/facilities", json=facility_body(), headers=operator)
    assert created.status_code == 201
    location = created.headers["location"]

    assert (await stack.client.get(location, headers=operator)).status_code == 200
    # Another operator learns nothing, not even that it exists.
    assert (await stack.client.get(location, headers=other)).status_code == 404


async def test_scopes_are_enforced(stack: Stack) -> None:
    reader = await stack.headers_for(name="民政局", kind="bureau", bureau="CIVIL", scopes=["registry:read"])
    response = await stack.client.post("/v1/facilities", json=facility_body(), headers=reader)
    assert response.status_code == 403
    assert "registry:write" in response.json()["detail"]
    assert (await stack.client.post("/v1/admin/clients", json={}, headers=reader)).status_code == 403


async def test_public_paths_need_no_token_and_the_rest_do(stack: Stack) -> None:
    assert (await stack.client.get("/v1/divisions")).status_code == 200
    refused = await stack.client.post("/v1/facilities", json=facility_body())
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert (
        await stack.client.get("/v1/facilities/x", headers={"Authorization": "Bearer nonsense"})
    ).status_code == 401
    assert (await stack.client.get("/v1/nowhere", headers=await stack.admin())).status_code == 404


async def test_a_disabled_client_gets_no_new_token(stack: Stack) -> None:
    created = await stack.new_client(name="临时", kind="app", scopes=["guidance:read"])
    disabled = await stack.client.delete(
        f"/v1/admin/clients/{created['client_id']}", headers=await stack.admin()
    )
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    response = await stack.client.post(
        "/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": created["client_id"],
            "client_secret": created["client_secret"],
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


async def test_client_registration_validates_every_field(stack: Stack) -> None:
    response = await stack.client.post(
        "/v1/admin/clients",
        json={"name": "", "kind": "king", "scopes": ["registry:fly"], "facility_ids": ["not-a-uuid"]},
        headers=await stack.admin(),
    )
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"name", "kind", "scopes", "facility_ids"}


async def test_clients_are_listed_a_page_at_a_time(stack: Stack) -> None:
    for n in range(3):
        await stack.new_client(
            name=f"区{n}", kind="district", district_code="310104", scopes=["registry:read"]
        )
    first = (await stack.client.get("/v1/admin/clients?limit=2", headers=await stack.admin())).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = (
        await stack.client.get(
            f"/v1/admin/clients?limit=2&cursor={first['next_cursor']}", headers=await stack.admin()
        )
    ).json()
    ids = [c["client_id"] for c in first["items"] + rest["items"]]
    assert len(ids) == len(set(ids)) == 4  # admin and the three districts
    assert all("secret" not in key for c in first["items"] for key in c)


async def test_a_down_service_is_a_503_with_retry_after(stack: Stack) -> None:
    response = await stack.client.get("/v1/stations", headers=await stack.admin())
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.headers["content-type"] == "application/problem+json"
