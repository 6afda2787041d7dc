from __future__ import annotations

import time
from datetime import datetime, tzinfo

import pytest

from shared.errors import Unauthorized
from shared.identity import (
    ADMIN_OVERSIGHT_SCOPES,
    ClientKind,
    Identity,
    IdentitySigner,
    IdentityVerifier,
    generate_keypair,
)


def test_a_signed_identity_verifies_with_the_public_key() -> None:
    private_pem, public_pem = generate_keypair()
    identity = Identity(
        client_id="op-1", kind=ClientKind.operator, facility_ids=["f-1"], scopes=["registry:read"]
    )
    token = IdentitySigner(private_pem).sign(identity, request_id="r-1")
    assert IdentityVerifier(public_pem).verify(token) == identity


def test_a_verified_identity_is_kept_only_until_its_token_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    private_pem, public_pem = generate_keypair()
    verifier = IdentityVerifier(public_pem)
    token = IdentitySigner(private_pem).sign(Identity(client_id="op-1", kind=ClientKind.operator))
    assert verifier.verify(token) is verifier.verify(token)  # checked once, then kept
    later = time.time() + 120  # past the token's 60 s and the 5 s leeway

    class Later(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Later:
            return cls.fromtimestamp(later, tz)

    monkeypatch.setattr("jwt.api_jwt.datetime", Later)
    monkeypatch.setattr("shared.identity.time.time", lambda: later)
    with pytest.raises(Unauthorized):
        verifier.verify(token)


def test_a_token_from_another_key_is_refused() -> None:
    token = IdentitySigner(generate_keypair()[0]).sign(Identity(client_id="x", kind=ClientKind.admin))
    with pytest.raises(Unauthorized):
        IdentityVerifier(generate_keypair()[1]).verify(token)


def test_a_tampered_token_is_refused() -> None:
    private_pem, public_pem = generate_keypair()
    token = IdentitySigner(private_pem).sign(Identity(client_id="x", kind=ClientKind.operator))
    head, body, signature = token.split(".")
    with pytest.raises(Unauthorized):
        IdentityVerifier(public_pem).verify(f"{head}.{body}x.{signature}")


@pytest.mark.parametrize(
    ("caller", "visible"),
    [
        (Identity(client_id="a", kind=ClientKind.admin), True),
        (Identity(client_id="b", kind=ClientKind.bureau, bureau="EDU"), True),
        (Identity(client_id="d", kind=ClientKind.district, district_code="310104"), True),
        (Identity(client_id="d", kind=ClientKind.district, district_code="310101"), False),
        (Identity(client_id="o", kind=ClientKind.operator, facility_ids=["f-1"]), True),
        (Identity(client_id="owner", kind=ClientKind.operator), True),
        (Identity(client_id="o2", kind=ClientKind.operator, facility_ids=["f-2"]), False),
        (Identity(client_id="p", kind=ClientKind.parent), False),
    ],
)
def test_facility_visibility(caller: Identity, visible: bool) -> None:
    assert (
        caller.may_see_facility(facility_id="f-1", district_code="310104", owner_client_id="owner") is visible
    )


ADMIN = Identity(client_id="admin", kind=ClientKind.admin, scopes=["admin"])
OVERSIGHT = sorted(ADMIN_OVERSIGHT_SCOPES)
DOMAIN_ACTS = [
    "registry:write",
    "registry:review",
    "workforce:write",
    "workforce:ban",
    "workforce:pii",
    "monitoring:ingest",
    "monitoring:write",
    "guidance:write",
    "guidance:pii",
    "parent",
]


def test_the_oversight_reads_are_reads() -> None:
    assert OVERSIGHT == [
        "audit:read",
        "guidance:read",
        "indicators:read",
        "monitoring:read",
        "registry:read",
        "workforce:read",
    ]


@pytest.mark.parametrize("scope", ["admin", *OVERSIGHT])
def test_the_admin_scope_implies_the_oversight_reads(scope: str) -> None:
    assert ADMIN.has_scope(scope)


@pytest.mark.parametrize("scope", DOMAIN_ACTS)
def test_the_admin_client_holds_no_domain_act_nor_pii(scope: str) -> None:
    assert not ADMIN.has_scope(scope)
    # Not even granted explicitly: the admin client's row cannot be given a bureau's duties.
    assert not Identity(client_id="admin", kind=ClientKind.admin, scopes=["admin", scope]).has_scope(scope)


def test_an_admin_kind_without_the_admin_scope_holds_nothing() -> None:
    assert not Identity(client_id="admin", kind=ClientKind.admin).has_scope("registry:read")


def test_other_clients_hold_exactly_their_scopes_and_never_admin() -> None:
    scopes = ["registry:review", "admin"]
    bureau = Identity(client_id="b", kind=ClientKind.bureau, bureau="EDU", scopes=scopes)
    assert bureau.has_scope("registry:review")
    assert not bureau.has_scope("registry:read")
    assert not bureau.has_scope("admin")
