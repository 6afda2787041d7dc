"""Apps under real uvicorn servers in the test's own event loop: the services as production runs
them, reached over sockets (the gateway suite's way to test its HTTP client as production uses it)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp

from tests.support import eventually


class _TestServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Ctrl-C stops pytest, not just this one test's server.
        yield


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, *, port: int = 0, lifespan: bool = False) -> AsyncIterator[str]:
    """`app` under a real uvicorn server on 127.0.0.1 in this event loop, for as long as the block
    lasts; yields its base URL. `lifespan=False` for an app whose lifespan `running` already runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        app,
        lifespan="on" if lifespan else "off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = _TestServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started or task.done(), interval=0.01)
        if task.done():
            task.result()
            raise RuntimeError("the test server stopped while starting")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
