"""The token endpoint as OAuth 2.0 clients speak it (RFC 6749): a real OAuth library gets a token
over a socket with HTTP Basic and with the form fields; every refusal is §5.2 JSON, never stored by
a cache; the RFC 8414 metadata says where and how."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client

from tests.conftest import ADMIN_SECRET
from tests.gateway.conftest import Gateway, start_gateway
from tests.gateway.test_sign_in import TIGHT, from_address
from tests.servers import serving
from tests.support import DatabaseFactory

TOKEN = "/v1/auth/token"
GRANT = {"grant_type": "client_credentials"}


def basic(client_id: str, secret: str) -> dict[str, str]:
    pair = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def assert_not_stored(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == error and body["error_description"]
    assert set(body) == {"error", "error_description"}
    assert_not_stored(response)


@pytest.fixture
async def served(gw: Gateway) -> AsyncIterator[str]:
    """The gateway under uvicorn on a real socket: what another system's OAuth library reaches."""
    async with serving(gw.app) as url:
        yield url


async def operator(gw: Gateway, scopes: list[str] | None = None) -> dict[str, Any]:
    return await gw.new_client(
        name="天平托育", kind="operator", scopes=scopes or ["registry:read", "registry:write"]
    )


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_an_oauth_library_gets_a_token_and_calls_the_api(gw: Gateway, served: str, method: str) -> None:
    async with httpx.AsyncClient() as plain:
        metadata = (await plain.get(f"{served}/.well-known/oauth-authorization-server")).json()
    assert metadata["issuer"] == served
    assert method in metadata["token_endpoint_auth_methods_supported"]
    async with AsyncOAuth2Client(
        client_id="admin", client_secret=ADMIN_SECRET, token_endpoint_auth_method=method
    ) as client:
        token = await client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
        assert token["token_type"] == "Bearer" and token["scope"] == "admin"
        assert token["expires_at"] > 0  # authlib read expires_in
        listed = await client.get(f"{served}/v1/admin/clients")  # the token rides on every call
    assert listed.status_code == 200, listed.text
    assert any(c["client_id"] == "admin" for c in listed.json()["items"])


async def test_an_oauth_library_asks_for_fewer_scopes(gw: Gateway, served: str) -> None:
    created = await operator(gw)
    async with AsyncOAuth2Client(
        client_id=created["client_id"], client_secret=created["client_secret"], scope="registry:read"
    ) as client:
        token = await client.fetch_token(f"{served}{TOKEN}", grant_type="client_credentials")
        assert token["scope"] == "registry:read"
        refused = await client.post(f"{served}/v1/facilities", json={})
    assert refused.status_code == 403  # registry:write was not asked for


async def test_basic_credentials_are_form_urlencoded_inside(gw: Gateway) -> None:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded before base64, so a `:` in an id is `%3A`."""
    created = await operator(gw)
    encoded = created["client_id"].replace("-", "%2D")
    response = await gw.client.post(TOKEN, data=GRANT, headers=basic(encoded, created["client_secret"]))
    assert response.status_code == 200, response.text
    assert_not_stored(response)
    assert response.json()["scope"] == "registry:read registry:write"


async def test_every_success_and_refusal_is_marked_no_store(gw: Gateway) -> None:
    ok = await gw.client.post(TOKEN, data=GRANT | {"client_id": "admin", "client_secret": ADMIN_SECRET})
    assert ok.status_code == 200
    assert_not_stored(ok)
    assert "cache-control" not in (await gw.client.get("/v1/divisions")).headers


async def test_a_wrong_secret_over_basic_is_401_with_a_basic_challenge(gw: Gateway) -> None:
    wrong = await gw.client.post(TOKEN, data=GRANT, headers=basic("admin", "nope"))
    unknown = await gw.client.post(TOKEN, data=GRANT, headers=basic("ghost", "nope"))
    for response in (wrong, unknown):
        assert_oauth_error(response, 401, "invalid_client")
        assert response.headers["www-authenticate"].startswith("Basic")
    assert wrong.json() == unknown.json()  # which of the two is not said


async def test_a_wrong_secret_in_the_form_is_invalid_client(gw: Gateway) -> None:
    response = await gw.client.post(TOKEN, data=GRANT | {"client_id": "admin", "client_secret": "nope"})
    assert_oauth_error(response, 401, "invalid_client")


async def test_no_client_authentication_is_invalid_client(gw: Gateway) -> None:
    assert_oauth_error(await gw.client.post(TOKEN, data=GRANT), 401, "invalid_client")
    only_id = await gw.client.post(TOKEN, data=GRANT | {"client_id": "admin"})
    assert_oauth_error(only_id, 401, "invalid_client")
    bearer = await gw.client.post(TOKEN, data=GRANT, headers={"Authorization": "Bearer abc"})
    assert_oauth_error(bearer, 401, "invalid_client")


async def test_both_ways_of_authenticating_at_once_is_invalid_request(gw: Gateway) -> None:
    both = await gw.client.post(
        TOKEN,
        data=GRANT | {"client_id": "admin", "client_secret": ADMIN_SECRET},
        headers=basic("admin", ADMIN_SECRET),
    )
    assert_oauth_error(both, 400, "invalid_request")
    other_id = await gw.client.post(
        TOKEN, data=GRANT | {"client_id": "someone-else"}, headers=basic("admin", ADMIN_SECRET)
    )
    assert_oauth_error(other_id, 400, "invalid_request")
    # The same id beside Basic is no second authentication: some libraries send it.
    same_id = await gw.client.post(
        TOKEN, data=GRANT | {"client_id": "admin"}, headers=basic("admin", ADMIN_SECRET)
    )
    assert same_id.status_code == 200, same_id.text


@pytest.mark.parametrize(
    ("headers", "content"),
    [
        ({"Authorization": "Basic %%%not-base64"}, "grant_type=client_credentials"),
        (
            {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
            "grant_type=client_credentials",
        ),
        ({"Content-Type": "application/json"}, '{"grant_type": "client_credentials"}'),
        ({}, "grant_type=client_credentials&grant_type=client_credentials&client_id=a&client_secret=b"),
        ({}, "client_id=admin&client_secret=x"),
        ({}, "grant_type=client_credentials&client_id=bad%20id&client_secret=x"),
        ({}, "grant_type=client_credentials&client_id=admin&client_secret=" + "x" * 257),
    ],
    ids=["basic-not-base64", "basic-no-colon", "json-body", "repeated", "no-grant", "bad-id", "long-secret"],
)
async def test_a_malformed_request_is_invalid_request(
    gw: Gateway, headers: dict[str, str], content: str
) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"} | headers
    response = await gw.client.post(TOKEN, content=content, headers=headers)
    assert_oauth_error(response, 400, "invalid_request")


async def test_another_grant_type_is_unsupported(gw: Gateway) -> None:
    for grant in ("password", "authorization_code", "refresh_token"):
        response = await gw.client.post(
            TOKEN, data={"grant_type": grant, "client_id": "admin", "client_secret": ADMIN_SECRET}
        )
        assert_oauth_error(response, 400, "unsupported_grant_type")


async def test_a_disabled_client_is_unauthorized_client(gw: Gateway) -> None:
    created = await operator(gw)
    await gw.client.delete(f"/v1/admin/clients/{created['client_id']}", headers=await gw.admin())
    response = await gw.client.post(
        TOKEN, data=GRANT, headers=basic(created["client_id"], created["client_secret"])
    )
    assert_oauth_error(response, 400, "unauthorized_client")


async def test_a_scope_not_granted_or_unknown_is_invalid_scope(gw: Gateway) -> None:
    created = await operator(gw, ["registry:read"])
    credentials = basic(created["client_id"], created["client_secret"])
    for scope in ("registry:write", "registry:read workforce:ban", "parent", "no-such:scope", "a  b", ""):
        response = await gw.client.post(TOKEN, data=GRANT | {"scope": scope}, headers=credentials)
        assert_oauth_error(response, 400, "invalid_scope")
    granted = await gw.client.post(TOKEN, data=GRANT | {"scope": "registry:read"}, headers=credentials)
    assert granted.status_code == 200 and granted.json()["scope"] == "registry:read"


async def test_basic_failures_spend_the_sign_in_buckets_as_form_failures_do(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    async with (
        start_gateway(databases=databases, keys=keys, sign_in_limits=TIGHT) as gw,
        from_address(gw.app, "203.0.113.77") as attacker,
    ):
        codes = []
        for i in range(5):
            guess = await attacker.post(TOKEN, data=GRANT, headers=basic("admin", f"guess-{i}"))
            codes.append(guess.status_code)
            assert_not_stored(guess)
        assert codes == [401, 401, 401, 429, 429]
        refused = await attacker.post(TOKEN, data=GRANT | {"client_id": "admin", "client_secret": "x"})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.headers["content-type"] == "application/problem+json"  # HTTP's refusal, not OAuth's


async def test_the_authorization_server_metadata(gw: Gateway) -> None:
    response = await gw.client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["issuer"] == "http://gateway"
    assert metadata["token_endpoint"] == "http://gateway/v1/auth/token"
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert metadata["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]
    assert {"registry:read", "workforce:ban", "admin"} <= set(metadata["scopes_supported"])
    assert "parent" not in metadata["scopes_supported"]
    assert "jwks_uri" not in metadata  # HS256 with the gateway's own keys: nothing public to publish
