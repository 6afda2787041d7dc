"""A facility's video system on the bus: its credential publishes that facility's CCTV events
(stored by JetStream), nothing else, and stops working on every node once revoked; issued, listed
and revoked through the gateway by those who manage the facility, every call audited."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import nats
import pytest
from fastapi import FastAPI
from nats.errors import Error as NatsError
from sqlalchemy import select

from cradle.layout import free_port
from cradle.nats import ADMIN, CLAIMS, BusTrust, Cluster, init_trust
from gateway.device_credentials import DeviceIssuer
from gateway.models import AuditRecord
from shared.events.permissions import inbox_prefix
from shared.events.streams import Namespace
from shared.nats_auth import creds_jwt, decode_jwt
from tests.conftest import facility_body
from tests.gateway.conftest import Gateway, start_gateway
from tests.support import DatabaseFactory, NatsProcess, eventually, provision_namespace


async def _quiet(_: Exception) -> None:
    """nats-py logs refused connections with a traceback; a refusal is the point here."""


@pytest.fixture
async def cluster(tmp_path: Path, namespace: str) -> AsyncIterator[tuple[list[NatsProcess], BusTrust]]:
    """Two nodes of the project's nats-server, routes authenticated, each with its own resolver."""
    trust = init_trust(tmp_path / "trust", namespace=namespace)
    routes = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    nodes = [
        NatsProcess(
            tmp_path / f"n{i}",
            trust=trust,
            name=f"n{i}-{uuid.uuid4().hex[:4]}",
            cluster=Cluster(name="t", routes=routes, listen=routes[i]),
        )
        for i in range(2)
    ]
    for node in nodes:
        await node.start()

    async def provisioned() -> bool:  # once the two nodes have elected a JetStream leader
        try:
            await provision_namespace(nodes[0].url, namespace, credentials=trust.creds_path(ADMIN))
        except (TimeoutError, NatsError):
            return False
        return True

    await eventually(provisioned, timeout=60, interval=0.5)
    yield nodes, trust
    for node in nodes:
        await node.stop()


async def test_a_device_publishes_only_its_facility_and_is_revoked_on_every_node(
    cluster: tuple[list[NatsProcess], BusTrust], namespace: str, tmp_path: Path
) -> None:
    nodes, trust = cluster
    ns = Namespace(namespace)
    issuer = DeviceIssuer.from_file(trust.device_issuer)
    credential_id = uuid.uuid4().hex
    device = issuer.issue(facility_id="fac-1", credential_id=credential_id)
    creds_file = tmp_path / "camera.creds"
    creds_file.write_text(device.creds)

    errors: list[Exception] = []

    async def keep(exc: Exception) -> None:
        errors.append(exc)

    async def connect(url: str) -> nats.NATS:
        return await nats.connect(
            url,
            user_credentials=str(creds_file),
            inbox_prefix=inbox_prefix(credential_id),
            error_cb=keep,
            allow_reconnect=False,
            max_reconnect_attempts=0,
        )

    on_second = await connect(nodes[1].url)
    nc = await connect(nodes[0].url)
    js = nc.jetstream(timeout=2)
    ack = await js.publish(ns.ingest_subject("fac-1"), b'{"events": []}')
    assert ack.stream == ns.ingest_stream
    with pytest.raises((TimeoutError, NatsError)):
        await js.publish(ns.ingest_subject("fac-2"), b"{}", timeout=1)
    await eventually(lambda: any("permissions violation" in str(e).lower() for e in errors))
    with pytest.raises((TimeoutError, NatsError)):
        await js.publish(f"{namespace}.monitoring.incident.confirmed", b"{}", timeout=1)

    await issuer.revoke(nats_url=nodes[0].url, claims_creds=trust.creds_path(CLAIMS), users=[device.user])

    # Both nodes close the live connections and refuse new ones.
    await eventually(lambda: nc.is_closed and on_second.is_closed)
    for node in nodes:
        with pytest.raises(NatsError):
            await nats.connect(
                node.url,
                user_credentials=str(creds_file),
                allow_reconnect=False,
                max_reconnect_attempts=0,
                error_cb=_quiet,
            )
    # A device issued afterwards still works: the revocation names one user.
    other = issuer.issue(facility_id="fac-1", credential_id=uuid.uuid4().hex)
    (tmp_path / "other.creds").write_text(other.creds)
    fresh = await nats.connect(nodes[1].url, user_credentials=str(tmp_path / "other.creds"), error_cb=_quiet)
    await fresh.close()


# ---- through the gateway ---------------------------------------------------------------------------


@dataclass
class DeviceDesk:
    """A gateway that issues device credentials for an operator-mode nats-server of the test's own,
    in front of the real registry, with one approved-or-not facility (district 310104) and its clients."""

    gw: Gateway
    node: NatsProcess
    trust: BusTrust
    namespace: Namespace
    facility_id: str
    operator: dict[str, str]

    def path(self, suffix: str = "", facility_id: str | None = None) -> str:
        return f"/v1/facilities/{facility_id or self.facility_id}/device-credentials{suffix}"


@pytest.fixture
async def desk(
    tmp_path: Path, namespace: str, databases: DatabaseFactory, keys: dict[str, Any], registry_app: FastAPI
) -> AsyncIterator[DeviceDesk]:
    trust = init_trust(tmp_path / "trust", namespace=namespace)
    node = NatsProcess(tmp_path / "nats", trust=trust)
    await node.start()
    try:
        await provision_namespace(node.url, namespace, credentials=trust.creds_path(ADMIN))
        async with start_gateway(
            databases=databases,
            keys=keys,
            services={"registry": registry_app},
            nats_url=node.url,
            event_namespace=namespace,
            nats_creds=trust.creds_path("gateway"),
            device_issuer_file=trust.device_issuer,
            nats_claims_creds=trust.creds_path(CLAIMS),
        ) as gw:
            owner = await gw.headers_for(name="小太阳托育", kind="operator", scopes=["registry:write"])
            submitted = await gw.client.post("/v1/facilities", json=facility_body(), headers=owner)
            assert submitted.status_code == 201, submitted.text
            facility_id = submitted.json()["id"]
            operator = await gw.headers_for(
                name="小太阳托育 视频",
                kind="operator",
                facility_ids=[facility_id],
                scopes=["registry:read", "monitoring:ingest"],
            )
            yield DeviceDesk(gw, node, trust, Namespace(namespace), facility_id, operator)
    finally:
        await node.stop()


def _seed_of(creds_text: str) -> str:
    lines = creds_text.splitlines()
    return lines[lines.index("-----BEGIN USER NKEY SEED-----") + 1]


async def test_the_operator_issues_a_device_credential_that_publishes_its_facility_only(
    desk: DeviceDesk, tmp_path: Path
) -> None:
    gw, ns = desk.gw, desk.namespace
    issued = await gw.client.post(desk.path(), json={"label": "NVR 1号楼"}, headers=desk.operator)
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert body["subject"] == ns.ingest_subject(desk.facility_id)
    assert body["facility_id"] == desk.facility_id and body["expires_at"] is None
    assert body["revoked_at"] is None
    creds_file = tmp_path / "nvr.creds"
    creds_file.write_text(body["creds"])

    errors: list[Exception] = []

    async def keep(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(
        desk.node.url,
        user_credentials=str(creds_file),
        inbox_prefix=body["inbox_prefix"],
        error_cb=keep,
        allow_reconnect=False,
        max_reconnect_attempts=0,
    )
    js = nc.jetstream(timeout=5)
    payload = b'{"events": [{"type": "motion"}]}'
    ack = await js.publish(body["subject"], payload)
    assert ack.stream == ns.ingest_stream
    admin = await nats.connect(desk.node.url, user_credentials=str(desk.trust.creds_path(ADMIN)))
    try:
        stored = await admin.jetstream().get_msg(ns.ingest_stream, ack.seq)
        assert stored.data == payload and stored.subject == body["subject"]
    finally:
        await admin.close()
    with pytest.raises((TimeoutError, NatsError)):
        await js.publish(ns.ingest_subject(str(uuid.uuid4())), payload, timeout=1)
    await eventually(lambda: any("permissions violation" in str(e).lower() for e in errors))

    # An expiring one carries its expiry in the JWT the server checks.
    expiring = await gw.client.post(
        desk.path(), json={"label": "camera 2", "valid_days": 30}, headers=desk.operator
    )
    assert expiring.status_code == 201, expiring.text
    expires_at = datetime.fromisoformat(expiring.json()["expires_at"])
    claims = decode_jwt(creds_jwt(expiring.json()["creds"]))
    assert claims["exp"] == int(expires_at.timestamp())
    assert 29 * 86400 < claims["exp"] - time.time() <= 30 * 86400

    # The list shows who issued what, never a secret.
    listed = await gw.client.get(desk.path(), headers=desk.operator)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [item["id"] for item in items] == [expiring.json()["id"], body["id"]]
    assert all("creds" not in item for item in items)
    for secret in (_seed_of(body["creds"]), _seed_of(expiring.json()["creds"]), creds_jwt(body["creds"])):
        assert secret not in listed.text
    page = await gw.client.get(desk.path(), params={"limit": 1}, headers=desk.operator)
    after = await gw.client.get(
        desk.path(), params={"limit": 1, "cursor": page.json()["next_cursor"]}, headers=desk.operator
    )
    assert [i["id"] for i in page.json()["items"] + after.json()["items"]] == [i["id"] for i in items]
    await nc.close()


async def test_who_may_manage_a_facilitys_device_credentials_and_revocation_disconnects(
    desk: DeviceDesk, tmp_path: Path
) -> None:
    gw = desk.gw
    issued = await gw.client.post(desk.path(), json={"label": "NVR"}, headers=desk.operator)
    assert issued.status_code == 201, issued.text
    credential = issued.json()
    creds_file = tmp_path / "nvr.creds"
    creds_file.write_text(credential["creds"])
    nc = await nats.connect(
        desk.node.url,
        user_credentials=str(creds_file),
        inbox_prefix=credential["inbox_prefix"],
        error_cb=_quiet,
        allow_reconnect=False,
        max_reconnect_attempts=0,
    )
    one = desk.path(f"/{credential['id']}")

    stranger = await gw.headers_for(
        name="别家托育",
        kind="operator",
        facility_ids=[str(uuid.uuid4())],
        scopes=["registry:read", "monitoring:ingest"],
    )
    away = await gw.headers_for(
        name="黄浦区", kind="district", district_code="310101", scopes=["registry:read", "monitoring:write"]
    )
    home = await gw.headers_for(
        name="徐汇区", kind="district", district_code="310104", scopes=["registry:read", "monitoring:write"]
    )
    edu = await gw.bureau(scopes=["registry:read", "monitoring:write"])
    police = await gw.bureau(scopes=["registry:read", "monitoring:write"], bureau="POLICE")
    assert (await gw.client.post(desk.path(), json={"label": "x"}, headers=stranger)).status_code == 404
    for headers in (stranger, away):
        assert (await gw.client.get(desk.path(), headers=headers)).status_code == 404
        assert (await gw.client.delete(one, headers=headers)).status_code == 404
    assert (await gw.client.get(desk.path(), headers=police)).status_code == 403
    assert (await gw.client.delete(one, headers=police)).status_code == 403
    for headers in (home, edu):  # they oversee the facility's devices, they do not issue them
        assert (await gw.client.post(desk.path(), json={"label": "x"}, headers=headers)).status_code == 403
        listed = await gw.client.get(desk.path(), headers=headers)
        assert listed.status_code == 200 and [i["id"] for i in listed.json()["items"]] == [credential["id"]]
    assert (await gw.client.get(desk.path())).status_code == 401
    # Bad input is a problem, never a 500.
    for bad in ({"label": ""}, {"label": "x", "valid_days": 0}, {"label": "x", "scope": ">"}):
        refused = await gw.client.post(desk.path(), json=bad, headers=desk.operator)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
    wildcard = await gw.client.post(desk.path(facility_id=">"), json={"label": "x"}, headers=desk.operator)
    assert wildcard.status_code in (404, 422), wildcard.text
    unknown = await gw.client.delete(desk.path(f"/{uuid.uuid4()}"), headers=desk.operator)
    assert unknown.status_code == 404

    revoked = await gw.client.delete(one, headers=home)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None and revoked.json()["revoked_by"] != ""
    await eventually(lambda: nc.is_closed)
    with pytest.raises(NatsError):
        await nats.connect(
            desk.node.url,
            user_credentials=str(creds_file),
            allow_reconnect=False,
            max_reconnect_attempts=0,
            error_cb=_quiet,
        )
    again = await gw.client.delete(one, headers=desk.operator)
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    # A second revocation keeps the first one on the bus.
    second = await gw.client.post(desk.path(), json={"label": "NVR 2"}, headers=desk.operator)
    assert (await gw.client.delete(desk.path(f"/{second.json()['id']}"), headers=edu)).status_code == 200
    with pytest.raises(NatsError):
        await nats.connect(
            desk.node.url,
            user_credentials=str(creds_file),
            allow_reconnect=False,
            max_reconnect_attempts=0,
            error_cb=_quiet,
        )

    # Every issue and revocation is in the audit log with its path and status.
    await gw.audit_settled()
    async with gw.app.state.sessionmaker() as session:
        rows = (
            await session.execute(
                select(AuditRecord.method, AuditRecord.path, AuditRecord.status).where(
                    AuditRecord.path.startswith(desk.path())
                )
            )
        ).all()
    calls = {(method, path, status) for method, path, status in rows}
    assert ("POST", desk.path(), 201) in calls
    assert ("DELETE", one, 200) in calls
    assert ("DELETE", one, 404) in calls  # the stranger's attempt


async def test_a_gateway_without_the_issuer_keys_refuses_to_issue(gw: Gateway) -> None:
    owner = await gw.headers_for(name="小太阳托育", kind="operator", scopes=["registry:write"])
    submitted = await gw.client.post("/v1/facilities", json=facility_body(), headers=owner)
    facility_id = submitted.json()["id"]
    operator = await gw.headers_for(
        name="视频",
        kind="operator",
        facility_ids=[facility_id],
        scopes=["registry:read", "monitoring:ingest"],
    )
    path = f"/v1/facilities/{facility_id}/device-credentials"
    refused = await gw.client.post(path, json={"label": "NVR"}, headers=operator)
    assert refused.status_code == 503, refused.text
    listed = await gw.client.get(path, headers=operator)
    assert listed.status_code == 200 and listed.json()["items"] == []
