"""A facility's video system on the bus: its credential publishes that facility's CCTV events
(stored by JetStream), nothing else, and stops working on every node once revoked."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.errors import Error as NatsError

from gateway.device_credentials import DeviceIssuer
from shared.cli.layout import free_port
from shared.cli.nats import ADMIN, CLAIMS, BusTrust, Cluster, init_trust
from shared.events.permissions import inbox_prefix
from shared.events.streams import Namespace
from tests.support import NatsProcess, eventually, provision_namespace


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
    await eventually(lambda: any("permissions violation" in str(e).lower() for e in errors), timeout=5)
    with pytest.raises((TimeoutError, NatsError)):
        await js.publish(f"{namespace}.monitoring.incident.confirmed", b"{}", timeout=1)

    await issuer.revoke(nats_url=nodes[0].url, claims_creds=trust.creds_path(CLAIMS), users=[device.user])

    # Both nodes close the live connections and refuse new ones.
    await eventually(lambda: nc.is_closed and on_second.is_closed, timeout=10)
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
