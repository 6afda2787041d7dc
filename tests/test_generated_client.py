"""A client generated from the committed docs/openapi.json by openapi-python-client (offline, into a
temporary directory) runs a short story against a real stack over a socket: a token by HTTP Basic,
an operator registered, its token by the form, a facility applied for, read back and found in the
list, the public divisions. The generator must skip nothing: any warning fails."""

from __future__ import annotations

import base64
import importlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cradle.openapi import DOCUMENT
from tests.conftest import ADMIN_SECRET, Stack, start_stack
from tests.servers import serving
from tests.support import DatabaseFactory

PACKAGE = "cradle_api_client"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    where = tmp_path_factory.mktemp("client")
    run = subprocess.run(
        [str(VENV_BIN / "openapi-python-client"), "generate", "--path", str(DOCUMENT)]
        + ["--meta", "none", "--output-path", str(where / PACKAGE)],
        capture_output=True,
        text=True,
        timeout=300,
        # Its post-generation hooks run ruff, from this environment; nothing reaches the network.
        env=os.environ | {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Warning" not in output and "Unable" not in output, output  # a skipped schema or response
    sys.path.insert(0, str(where))
    try:
        names = [
            "client",
            "api.auth.issue_token",
            "api.admin.create_client",
            "api.facilities.submit_facility",
            "api.facilities.read_facility",
            "api.facilities.list_facilities",
            "api.divisions.list_divisions",
            "models",
        ]
        yield {name: importlib.import_module(f"{PACKAGE}.{name}") for name in names}
    finally:
        sys.path.remove(str(where))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture
async def served(
    databases: DatabaseFactory, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> AsyncIterator[tuple[Stack, str]]:
    async with (
        start_stack(
            databases=databases, nats_url=shared_nats_url, namespace=namespace, keys=keys, network=True
        ) as stack,
        serving(stack.gateway) as url,
    ):
        yield stack, url


async def test_a_generated_client_runs_the_story(
    generated: dict[str, ModuleType], served: tuple[Stack, str]
) -> None:
    _, url = served
    api, models = generated, generated["models"]
    client_module = api["client"]

    basic = base64.b64encode(f"admin:{ADMIN_SECRET}".encode()).decode()
    async with client_module.AuthenticatedClient(base_url=url, token=basic, prefix="Basic") as by_basic:
        grant = models.TokenRequest(grant_type=models.TokenRequestGrantType.CLIENT_CREDENTIALS)
        answer = await api["api.auth.issue_token"].asyncio_detailed(client=by_basic, body=grant)
    assert answer.status_code == 200, answer.content
    assert isinstance(answer.parsed, models.TokenResponse) and answer.parsed.scope == "admin"
    assert answer.headers["cache-control"] == "no-store"

    async with client_module.AuthenticatedClient(base_url=url, token=answer.parsed.access_token) as admin:
        created = await api["api.admin.create_client"].asyncio(
            client=admin,
            body=models.ClientCreate(
                name="天平街道社区服务中心",
                kind=models.ClientCreateKind.OPERATOR,
                scopes=["registry:read", "registry:write"],
            ),
        )
    assert isinstance(created, models.ClientCreated), created

    async with client_module.Client(base_url=url) as anonymous:
        posted = await api["api.auth.issue_token"].asyncio(
            client=anonymous,
            body=models.TokenRequest(
                grant_type=models.TokenRequestGrantType.CLIENT_CREDENTIALS,
                client_id=created.client_id,
                client_secret=created.client_secret,
            ),
        )
        assert isinstance(posted, models.TokenResponse), posted
        divisions = await api["api.divisions.list_divisions"].asyncio(client=anonymous)
    assert divisions and any(d.code == "310104" for d in divisions)

    async with client_module.AuthenticatedClient(base_url=url, token=posted.access_token) as operator:
        facility = await api["api.facilities.submit_facility"].asyncio(
            client=operator,
            body=models.FacilityCreate(
                name="天平街道社区托育点",
                kind=models.FacilityKind.COMMUNITY_POINT,
                inclusive=True,
                town_code="310104003",
                address="天平路 100 号",
                lat=31.205,
                lon=121.44,
                operator_name="天平街道社区服务中心",
                service_modes=[models.ServiceMode.FULL_DAY],
                capacity=models.Capacity(infant=10, toddler=15, preschool=20),
            ),
        )
        assert isinstance(facility, models.FacilityRead), facility
        assert facility.status == models.FacilityStatus.SUBMITTED and facility.district_code == "310104"
        again = await api["api.facilities.read_facility"].asyncio(facility.id, client=operator)
        assert isinstance(again, models.FacilityRead) and again.name == "天平街道社区托育点"
        listed = await api["api.facilities.list_facilities"].asyncio(client=operator)
    assert [item.id for item in listed.items] == [facility.id]
