"""NATS decentralized auth in one small module: nkeys, the JWTs the server trusts (operator, account,
user; alg "ed25519-nkey"), `.creds` files, and pushing an account's claims to a running cluster.

The PyPI `nats-jwt` package calls itself untested and pins old dependencies, so the few claims
Cradle needs are encoded here, after nats-io/jwt v2."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nacl.exceptions
import nacl.signing
import nkeys
from nats.aio.client import Client as NATS

Kind = Literal["operator", "account", "user"]
_PREFIX = {
    "operator": nkeys.PREFIX_BYTE_OPERATOR,
    "account": nkeys.PREFIX_BYTE_ACCOUNT,
    "user": nkeys.PREFIX_BYTE_USER,
}
_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
# An account with no limit but the JetStream ones switched on (0 would disable JetStream).
UNLIMITED_ACCOUNT = {
    "subs": -1,
    "data": -1,
    "payload": -1,
    "imports": -1,
    "exports": -1,
    "wildcards": True,
    "conn": -1,
    "leaf": -1,
    "mem_storage": -1,
    "disk_storage": -1,
    "streams": -1,
    "consumer": -1,
}
# The system account may not use JetStream.
NO_JETSTREAM = {"mem_storage": 0, "disk_storage": 0, "streams": 0, "consumer": 0}
CLAIMS_UPDATE_SUBJECT = "$SYS.REQ.CLAIMS.UPDATE"


class NatsAuthError(ValueError):
    """A JWT, seed or creds file that is not what it claims to be."""


@dataclass(frozen=True)
class NKey:
    """An nkey pair: the seed (secret, "S…") and its public key ("O…", "A…", "U…")."""

    seed: str

    @classmethod
    def new(cls, kind: Kind) -> NKey:
        raw = bytes(nacl.signing.SigningKey.generate())
        return cls(nkeys.encode_seed(raw, _PREFIX[kind]).decode())

    @property
    def public_key(self) -> str:
        return _keypair(self.seed).public_key.decode()

    def sign(self, data: bytes) -> bytes:
        return bytes(_keypair(self.seed).sign(data))


def _keypair(seed: str) -> nkeys.KeyPair:
    try:
        return nkeys.from_seed(seed.strip().encode())
    except nkeys.NkeysError as exc:
        raise NatsAuthError(f"not an nkey seed: {exc}") from None


def _verify_key(public_key: str) -> nacl.signing.VerifyKey:
    """An nkey public key: base32 of a prefix byte, the 32-byte Ed25519 key and a CRC-16."""
    raw = base64.b32decode(public_key + "=" * (-len(public_key) % 8))
    if len(raw) != 35 or nkeys.crc16_checksum(raw[:-2]) != raw[-2:]:
        raise ValueError("not an nkey public key")
    return nacl.signing.VerifyKey(raw[1:33])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_jwt(
    *,
    issuer: NKey,
    subject: str,
    name: str,
    nats: dict[str, Any],
    issued_at: int | None = None,
    expires_at: int | None = None,
) -> str:
    claims: dict[str, Any] = {
        "jti": "",
        "iat": int(time.time()) if issued_at is None else issued_at,
        "iss": issuer.public_key,
        "name": name,
        "sub": subject,
        "nats": {"version": 2, **nats},
    }
    if expires_at is not None:
        claims["exp"] = expires_at
    # As nats-io/jwt: the id is the hash of the claims without it.
    digest = hashlib.new("sha512_256", json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    signed = f"{_b64(json.dumps(_HEADER).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signed}.{_b64(issuer.sign(signed.encode()))}"


def decode_jwt(token: str, *, trusted_issuers: set[str] | None = None) -> dict[str, Any]:
    """The claims of a NATS JWT whose signature is valid (by one of `trusted_issuers`, if given)."""
    try:
        header_b64, claims_b64, signature_b64 = token.strip().split(".")
        header = json.loads(_unb64(header_b64))
        claims: dict[str, Any] = json.loads(_unb64(claims_b64))
        issuer = _verify_key(claims["iss"])
        issuer.verify(f"{header_b64}.{claims_b64}".encode(), _unb64(signature_b64))
        valid = header.get("alg") == _HEADER["alg"]
    except nacl.exceptions.BadSignatureError:
        raise NatsAuthError("NATS JWT signature does not verify") from None
    except (ValueError, KeyError, TypeError, nacl.exceptions.CryptoError) as exc:
        raise NatsAuthError(f"not a NATS JWT: {type(exc).__name__}") from None
    if not valid:
        raise NatsAuthError("NATS JWT signature does not verify")
    if trusted_issuers is not None and claims["iss"] not in trusted_issuers:
        raise NatsAuthError(f"NATS JWT issued by an untrusted key {claims['iss']}")
    return claims


@dataclass(frozen=True)
class Permissions:
    """What a user may publish and subscribe to; anything not allowed is refused."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    def claims(self) -> dict[str, Any]:
        return {"pub": {"allow": list(self.publish)}, "sub": {"allow": list(self.subscribe)}}


def operator_jwt(operator: NKey, *, name: str, system_account: str, signing_keys: list[str]) -> str:
    return encode_jwt(
        issuer=operator,
        subject=operator.public_key,
        name=name,
        nats={"type": "operator", "system_account": system_account, "signing_keys": signing_keys},
    )


@dataclass
class AccountClaims:
    """The parts of an account JWT Cradle writes. `revocations` maps a user's public key to a time:
    every JWT of that user issued at or before it is refused, and its connections are closed."""

    account: str  # public key
    name: str
    signing_keys: list[str] = field(default_factory=list)
    revocations: dict[str, int] = field(default_factory=dict)
    jetstream: bool = True

    def sign(self, issuer: NKey, *, issued_at: int | None = None) -> str:
        nats: dict[str, Any] = {
            "type": "account",
            "limits": UNLIMITED_ACCOUNT if self.jetstream else {**UNLIMITED_ACCOUNT, **NO_JETSTREAM},
            "signing_keys": self.signing_keys,
            "default_permissions": {"pub": {}, "sub": {}},
        }
        if self.revocations:
            nats["revocations"] = dict(sorted(self.revocations.items()))
        return encode_jwt(issuer=issuer, subject=self.account, name=self.name, nats=nats, issued_at=issued_at)

    @classmethod
    def from_jwt(cls, token: str, *, trusted_issuers: set[str]) -> AccountClaims:
        claims = decode_jwt(token, trusted_issuers=trusted_issuers)
        nats = claims["nats"]
        if nats.get("type") != "account":
            raise NatsAuthError("not an account JWT")
        keys = [k if isinstance(k, str) else k["key"] for k in nats.get("signing_keys") or []]
        limits = nats.get("limits") or {}
        return cls(
            account=claims["sub"],
            name=claims.get("name", ""),
            signing_keys=keys,
            revocations={k: int(v) for k, v in (nats.get("revocations") or {}).items()},
            jetstream=bool(limits.get("disk_storage") or limits.get("mem_storage")),
        )


def user_jwt(
    user: str,
    *,
    name: str,
    account: str,
    signer: NKey,
    permissions: Permissions | None,
    issued_at: int | None = None,
    expires_at: int | None = None,
) -> str:
    """A user of `account`, signed by the account's key or one of its signing keys. No permissions:
    the user may do anything in the account (the provisioning credential). Past `expires_at` the
    server refuses the JWT and closes its connections."""
    nats: dict[str, Any] = {"type": "user", "subs": -1, "data": -1, "payload": -1}
    if permissions is not None:
        nats |= permissions.claims()
    if signer.public_key != account:
        nats["issuer_account"] = account
    return encode_jwt(
        issuer=signer, subject=user, name=name, nats=nats, issued_at=issued_at, expires_at=expires_at
    )


def creds(jwt: str, seed: str) -> str:
    """The `.creds` text nats clients read (nats.connect(user_credentials=…), the nats CLI, Go, …)."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed}\n"
        "------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )


def creds_jwt(text: str) -> str:
    """The user JWT of a `.creds` text."""
    lines = [line.strip() for line in text.splitlines()]
    try:
        return lines[lines.index("-----BEGIN NATS USER JWT-----") + 1]
    except (ValueError, IndexError):
        raise NatsAuthError("not a NATS .creds file") from None


def write_private(path: Path, content: str) -> None:
    """Owner-only (0600), in an owner-only directory: these are the bus's secrets."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)


def claims_lookup_subject(account: str) -> str:
    return f"$SYS.REQ.ACCOUNT.{account}.CLAIMS.LOOKUP"


async def lookup_account_jwt(nc: NATS, account: str, *, timeout: float = 5.0) -> str:
    """The account JWT the cluster holds now (a system-account connection)."""
    reply = await nc.request(claims_lookup_subject(account), b"", timeout=timeout)
    token = reply.data.decode()
    if not token or "." not in token:
        raise NatsAuthError(f"the cluster has no JWT for account {account}")
    return token


async def push_account_jwt(nc: NATS, token: str, *, timeout: float = 5.0) -> None:
    """Hand an account JWT to the `full` resolver of every node (a system-account connection); the
    nodes store it, apply it to live connections (revoked users are disconnected) and gossip it."""
    reply = await nc.request(CLAIMS_UPDATE_SUBJECT, token.encode(), timeout=timeout)
    answer = json.loads(reply.data or b"{}")
    if "error" in answer:
        raise NatsAuthError(f"the cluster refused the account JWT: {answer['error']}")
