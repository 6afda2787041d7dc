"""NATS credentials for a facility's video system: it may publish its CCTV events to
`<ns>.ingest.cctv.<facility_id>` and nothing else. Issued with the CRADLE account's device signing
key; revoked at run time on every node by pushing the account's JWT, with the revocation added,
through the system account (`$SYS.REQ.CLAIMS.UPDATE`) to the `full` resolvers.

Trust: pushing an account JWT needs an operator signing key, so whoever holds `device_issuer.json`
can rewrite the CRADLE account (its signing keys, hence every permission on the bus). The gateway
holds it; removing that signing key from the operator JWT takes the power back."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import nats

from shared.events.permissions import device_permissions
from shared.events.streams import Namespace
from shared.nats_auth import (
    AccountClaims,
    NKey,
    creds,
    decode_jwt,
    lookup_account_jwt,
    push_account_jwt,
    user_jwt,
)


@dataclass(frozen=True)
class IssuedDevice:
    user: str  # the device's NATS user public key: what a revocation names
    creds: str  # the `.creds` text, shown once


@dataclass(frozen=True)
class DeviceIssuer:
    namespace: Namespace
    operator: str
    account: str
    operator_signing: NKey
    devices_signing: NKey

    @classmethod
    def from_file(cls, path: Path) -> DeviceIssuer:
        stored = json.loads(path.read_text())
        return cls(
            namespace=Namespace(stored["namespace"]),
            operator=stored["operator"],
            account=stored["account"],
            operator_signing=NKey(stored["operator_signing_seed"]),
            devices_signing=NKey(stored["devices_signing_seed"]),
        )

    def issue(self, *, facility_id: str, credential_id: str) -> IssuedDevice:
        user = NKey.new("user")
        token = user_jwt(
            user.public_key,
            name=f"device {credential_id} of facility {facility_id}",
            account=self.account,
            signer=self.devices_signing,
            permissions=device_permissions(
                self.namespace, facility_id=facility_id, credential_id=credential_id
            ),
        )
        return IssuedDevice(user=user.public_key, creds=creds(token, user.seed))

    async def revoke(self, *, nats_url: str, claims_creds: Path, users: list[str]) -> None:
        """Revoke these device users now: their JWTs stop working and their connections close, on
        every node. The cluster's current account JWT is the base, so nothing else changes."""
        nc = await nats.connect(
            nats_url.split(","),
            name="cradle-gateway-claims",
            user_credentials=str(claims_creds),
            connect_timeout=5,
            allow_reconnect=False,
            max_reconnect_attempts=0,
        )
        try:
            current = await lookup_account_jwt(nc, self.account)
            trusted = {self.operator, self.operator_signing.public_key}
            claims = AccountClaims.from_jwt(current, trusted_issuers=trusted)
            now = int(time.time())
            for user in users:
                claims.revocations[user] = now
            # iat one past the current one: a resolver keeps the newest JWT it has seen.
            issued_at = max(now, _issued_at(current) + 1)
            await push_account_jwt(nc, claims.sign(self.operator_signing, issued_at=issued_at))
        finally:
            await nc.close()


def _issued_at(token: str) -> int:
    return int(decode_jwt(token)["iat"])
