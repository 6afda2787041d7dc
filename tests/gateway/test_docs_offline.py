"""`/docs` and `/redoc` render with nothing but the gateway: Debian's chromium, headless, loads each
page from a live gateway (the registry behind it) with every request that would leave 127.0.0.1
sent to a recording proxy instead, and the rendered DOM holds Swagger UI's operation blocks and
ReDoc's operations while the proxy saw nothing (chromium's own calls home are pointed at the
loopback by its switches). The pages' own references are local paths, and their
Content-Security-Policy keeps them so."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.docs import ASSETS_PATH
from services.registry.app import create_app as create_registry
from services.registry.config import RegistrySettings
from tests.conftest import service_settings
from tests.gateway.conftest import start_gateway
from tests.servers import serving
from tests.support import DatabaseFactory, running

# Chromium's own calls home (sign-in, updates, network time, hints, autofill): not the page's.
BROWSER_CHATTER = (
    "OptimizationHints",
    "OptimizationGuideModelDownloading",
    "OptimizationHintsFetching",
    "AutofillServerCommunication",
    "NetworkTimeServiceQuerying",
    "MediaRouter",
    "Translate",
    "CertificateTransparencyComponentUpdater",
    "SigninInterceptBubble",
    "ChromeSignin",
    "AccountConsistency",
)
NOWHERE = "http://127.0.0.1:9"  # the discard port: a refused connection, never the network
REFERENCE = re.compile(r"""(?:src|href)=["']([^"']+)["']|url:\s*'([^']+)'|spec-url=["']([^"']+)["']""")


class RecordingProxy:
    """Where chromium sends every request not for the loopback: each is recorded and refused."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.port = 0

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        self.requests.append(line.decode("latin-1").strip())
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RecordingProxy]:
        server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield self


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "chromium is not installed: apt-get install -y --no-install-recommends chromium (.ci/run does)"
        )
    return found


async def rendered(url: str, proxy: RecordingProxy, profile: Path) -> str:
    """The DOM chromium renders once the page's scripts have run (virtual time: no fixed sleep)."""
    process = await asyncio.create_subprocess_exec(
        chromium(),
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--no-pings",
        "--bwsi",
        "--disable-extensions",
        "--disable-component-extensions-with-background-pages",
        # What chromium still calls on its own is pointed at the loopback, where nothing answers.
        f"--gaia-url={NOWHERE}",
        f"--google-apis-url={NOWHERE}",
        f"--lso-url={NOWHERE}",
        f"--component-updater=url-source={NOWHERE}",
        "--disable-features=" + ",".join(BROWSER_CHATTER),
        f"--user-data-dir={profile}",
        f"--proxy-server=http://127.0.0.1:{proxy.port}",
        "--virtual-time-budget=15000",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()[-2000:]
    return stdout.decode()


@pytest.fixture
async def live_gateway(
    db_factories: dict[str, DatabaseFactory], shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> AsyncIterator[tuple[str, FastAPI]]:
    """A gateway on a real socket with the registry behind it (the docs touch no data: SQLite)."""
    databases = db_factories["sqlite"]
    registry = create_registry(
        service_settings(
            RegistrySettings,
            url=await databases.fresh("registry"),
            nats_url=shared_nats_url,
            namespace=namespace,
            keys=keys,
        )
    )
    async with (
        running(registry),
        start_gateway(databases=databases, keys=keys, services={"registry": registry}) as gw,
        serving(gw.app) as url,
    ):
        yield url, gw.app


async def test_the_pages_reference_only_the_gateway(live_gateway: tuple[str, FastAPI]) -> None:
    url, _ = live_gateway
    async with httpx.AsyncClient(base_url=url) as client:
        for page in ("/docs", "/redoc"):
            response = await client.get(page)
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
            assert "default-src 'self'" in response.headers["content-security-policy"]
            references = [next(filter(None, m)) for m in REFERENCE.findall(response.text)]
            assert references, page
            assert all(ref.startswith("/") and not ref.startswith("//") for ref in references), references
            for ref in references:
                if ref.startswith(ASSETS_PATH):
                    asset = await client.get(ref)
                    assert asset.status_code == 200 and len(asset.content) > 1000, ref


async def test_swagger_ui_and_redoc_render_offline_in_chromium(
    live_gateway: tuple[str, FastAPI], tmp_path: Path
) -> None:
    url, _ = live_gateway
    proxy = RecordingProxy()
    async with proxy.running():
        swagger = await rendered(f"{url}/docs", proxy, tmp_path / "swagger")
        redoc = await rendered(f"{url}/redoc", proxy, tmp_path / "redoc")

    # Swagger UI built an operation block for the registry's paths, from the gateway's document.
    assert 'class="swagger-ui' in swagger
    assert swagger.count('class="opblock opblock-') >= 10, swagger[-3000:]
    assert "/v1/facilities" in swagger
    # ReDoc rendered its operations (each a section named after its operation).
    assert redoc.count('data-section-id="tag/') >= 1, redoc[-3000:]
    assert redoc.count('data-section-id="operation/') >= 10
    assert "/v1/facilities" in redoc
    assert proxy.requests == [], f"requests left 127.0.0.1: {proxy.requests}"
