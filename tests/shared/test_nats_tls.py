"""The bus over TLS as production runs it: the project's own nats-server with the configuration
`cradle nats init --cluster` writes (operator mode, TLS for clients and routes), certificates from
`cradle nats tls` (a CA of the deployment's own, made with `cryptography`). A service connects and
publishes with `NATS_TLS_CA`; without the CA a client is refused; two nodes route to each other
over TLS, each verifying the other's certificate."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from typer.testing import CliRunner

from cradle.cli import app as cradle
from cradle.layout import free_port
from cradle.nats import ADMIN, BusTrust, Cluster, ServerTls, init_trust, provision, server_config
from cradle.nats_server import nats_server_binary, wait_for_port
from cradle.nats_tls import TlsFiles
from shared.events.bus import EventBus
from shared.events.permissions import inbox_prefix, streams_used
from shared.events.streams import Namespace
from shared.events.tls import client_tls
from shared.nats_auth import write_private
from tests.support import eventually


@dataclass
class TlsNode:
    """One node of the bus with TLS on (the same config as compose's nodes, local paths and ports)."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"tls://127.0.0.1:{self.port}"


@asynccontextmanager
async def tls_nodes(
    tmp_path: Path, trust: BusTrust, tls: ServerTls, count: int
) -> AsyncIterator[list[TlsNode]]:
    ports = [(free_port(), free_port()) for _ in range(count)]
    cluster_routes = [f"127.0.0.1:{route}" for _, route in ports]
    nodes: list[TlsNode] = []
    try:
        for index, (port, route) in enumerate(ports):
            config = server_config(
                trust,
                store_dir=str(tmp_path / f"store-{index}"),
                server_name=f"tls-{index}",
                port=port,
                cluster=(
                    Cluster(name="tls-test", routes=cluster_routes, listen=f"127.0.0.1:{route}")
                    if count > 1
                    else None
                ),
                tls=tls,
            )
            path = tmp_path / f"node-{index}.conf"
            write_private(path, config)
            process = subprocess.Popen(  # noqa: ASYNC220  # outlives nothing: stopped below
                [nats_server_binary(), "--config", str(path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            nodes.append(TlsNode(port=port, process=process))
        for node in nodes:
            await wait_for_port("127.0.0.1", node.port)
        yield nodes
    finally:
        for node in nodes:
            node.process.terminate()
        for node in nodes:
            await asyncio.to_thread(node.process.wait, 10)


@pytest.fixture
def bus_dir(tmp_path: Path, run_id: str) -> tuple[BusTrust, TlsFiles]:
    """`cradle nats init` and `cradle nats tls`, as deploy/README.md has an operator run them."""
    directory = tmp_path / "nats"
    namespace = f"t{run_id}tls"
    trust = init_trust(directory, namespace=namespace)
    command = ["nats", "tls", "--dir", str(directory), "--hosts", "localhost,127.0.0.1"]
    result = CliRunner().invoke(cradle, command)
    assert result.exit_code == 0, result.output
    return trust, TlsFiles(directory / "tls")


def node_tls(files: TlsFiles) -> ServerTls:
    return ServerTls(cert_file=str(files.cert), key_file=str(files.key), ca_file=str(files.ca))


async def _quiet(_: Exception) -> None:
    """nats-py logs a refused handshake with a traceback; refusal is the point here."""


async def test_a_service_publishes_over_tls_with_the_ca_setting(
    tmp_path: Path, bus_dir: tuple[BusTrust, TlsFiles], monkeypatch: pytest.MonkeyPatch
) -> None:
    trust, files = bus_dir
    async with tls_nodes(tmp_path, trust, node_tls(files), 1) as [node]:
        # What `cradle migrate` does in compose: provision with the admin credential, CA from NATS_TLS_CA.
        monkeypatch.setenv("NATS_TLS_CA", str(files.ca))
        await provision(node.url, namespace=trust.namespace, replicas=1, credentials=trust.creds_path(ADMIN))

        namespace = Namespace(trust.namespace)
        bus = EventBus(
            url=node.url,
            namespace=namespace,
            replicas=1,
            client_name="registry",
            streams=streams_used(namespace, "registry"),
            credentials=trust.creds_path("registry"),
            tls_ca=files.ca,
            inbox_prefix=inbox_prefix("registry"),
        )
        bus.start()
        try:
            js = await asyncio.wait_for(bus.wait_ready(), 15)
            assert bus.nc is not None and bus.nc.connected_url is not None
            assert bus.nc.connected_url.scheme == "tls"
            subject = f"{trust.namespace}.registry.facility.submitted"
            ack = await js.publish(subject, json.dumps({"over": "tls"}).encode())
            assert ack.stream == namespace.stream("registry") and ack.seq == 1
        finally:
            await bus.close()


async def test_a_client_without_the_ca_is_refused(tmp_path: Path, bus_dir: tuple[BusTrust, TlsFiles]) -> None:
    trust, files = bus_dir
    async with tls_nodes(tmp_path, trust, node_tls(files), 1) as [node]:
        for url in (node.url, f"nats://127.0.0.1:{node.port}"):  # a plain URL is upgraded, and verified
            with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
                await nats.connect(
                    url,
                    user_credentials=str(trust.creds_path("registry")),
                    allow_reconnect=False,
                    max_reconnect_attempts=0,
                    connect_timeout=5,
                    error_cb=_quiet,
                )


async def test_the_nodes_route_to_each_other_over_verified_tls(
    tmp_path: Path, bus_dir: tuple[BusTrust, TlsFiles]
) -> None:
    trust, files = bus_dir
    cluster = Cluster("c", ["a:6222"])
    config = server_config(trust, store_dir="/data", server_name="n", cluster=cluster, tls=node_tls(files))
    assert config.count("tls {") == 2 and "verify: true" in config  # clients, and routes both ways
    async with tls_nodes(tmp_path, trust, node_tls(files), 2) as [first, second]:
        creds, tls = str(trust.creds_path(ADMIN)), client_tls(files.ca)
        reader = await nats.connect(second.url, user_credentials=creds, tls=tls, error_cb=_quiet)
        writer = await nats.connect(first.url, user_credentials=creds, tls=tls, error_cb=_quiet)
        try:
            subject = f"{trust.namespace}.registry.route.check"
            received: list[bytes] = []

            async def keep(msg: nats.aio.msg.Msg) -> None:
                received.append(msg.data)

            await reader.subscribe(subject, cb=keep)
            await reader.flush()

            async def crossed() -> bool:
                # Until the route is up (and the interest has crossed it), a publish reaches no one.
                await writer.publish(subject, b"across the route")
                await writer.flush()
                return bool(received)

            assert await eventually(crossed, interval=0.2)
            assert received[0] == b"across the route"
        finally:
            await writer.close()
            await reader.close()
