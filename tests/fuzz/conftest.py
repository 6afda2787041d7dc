"""The fuzzing stack: all four services behind the gateway, in this process (on SQLite, or on each
backend of FUZZ_BACKENDS), seeded with a small city (tests/fuzz/world.py), one per module.

Schemathesis calls an ASGI app from its own event loop (a thread of its own); the stack's engines,
NATS connections and background tasks belong to the loop that started them. So the stack runs in a
blocking portal of its own, and schemathesis gets a `Bridge`: an ASGI app that reads the request in
schemathesis's loop and runs it on the real gateway in the stack's loop, whole."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI

from cradle.nats import CLAIMS, init_trust
from tests.conftest import SERVICES, Stack, start_stack
from tests.fuzz.world import EVERY_SCOPE, XUHUI, Estate, World, unlimited
from tests.support import DatabaseFactory

FUZZ_SERVICES = tuple(SERVICES)
_stacks = itertools.count(1)

# A schema fuzzer's test is one budgeted run over every operation: ~1 to 5 minutes of CPU at the
# default scale, 285 s with two suites and benchmarks on the two cores, which the suite's 300 s
# limit (meant for hangs) cut short. A hang still ends it, and the watchdog shows where.
SCHEMA_RUN_TIMEOUT = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name == "fuzz" and item.path.name.startswith("test_schema_"):
            item.add_marker(pytest.mark.timeout(SCHEMA_RUN_TIMEOUT))


class Bridge:
    """An ASGI app for another event loop: each request is read whole where it arrives, run on the
    gateway in the stack's loop, and its reply sent back. An exception that escapes the gateway is
    kept in `escaped` (with the request), since the caller sees only its 500."""

    def __init__(self, app: FastAPI, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.escaped: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # the stack's lifespan is the portal's business
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        future = asyncio.run_coroutine_threadsafe(self._run(dict(scope), bytes(body)), self.loop)
        for message in await asyncio.wrap_future(future):
            await send(message)

    async def _run(self, scope: dict[str, Any], body: bytes) -> list[dict[str, Any]]:
        scope["state"] = {}
        replied = asyncio.Event()
        delivered = False
        messages: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await replied.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                replied.set()

        try:
            await self.app(scope, receive, send)
        except Exception:
            self.escaped.append(f"{scope['method']} {scope['path']}\n{traceback.format_exc()}")
            if not messages:
                messages = [
                    {"type": "http.response.start", "status": 500, "headers": []},
                    {"type": "http.response.body", "body": b"escaped the gateway"},
                ]
        if messages and messages[-1].get("more_body", False):
            messages.append({"type": "http.response.body", "body": b""})
        return messages


@dataclass
class FuzzCity:
    """The running stack, its seeded objects and one set of headers per kind of caller."""

    portal: BlockingPortal
    stack: Stack
    bridge: Bridge
    callers: dict[str, dict[str, str]]
    estate: Estate
    guidance: Estate


async def seed(stack: Stack) -> tuple[dict[str, dict[str, str]], Estate, Estate]:
    world = World(stack)
    estate = await world.operator_estate("小太阳")
    await world.ban(estate)
    guidance = await world.guidance_estate("徐汇")
    # A client for the admin paths to read, rotate and disable (never one of the callers below).
    estate.ids["client"] = (await world.party("fuzz victim", kind="app", scopes=["guidance:read"]))[0]
    facility = [estate.ids["facility"]]
    callers = {
        "admin": await stack.admin(),
        "bureau": await world.headers("fuzz bureau", kind="bureau", bureau="EDU", scopes=EVERY_SCOPE),
        "district": await world.headers(
            "fuzz district", kind="district", district_code=XUHUI, scopes=EVERY_SCOPE
        ),
        "operator": await world.headers(
            "fuzz operator", kind="operator", facility_ids=facility, scopes=EVERY_SCOPE
        ),
        "app": await world.headers("fuzz app", kind="app", scopes=EVERY_SCOPE),
        "parent": guidance.parent,
    }
    return callers, estate, guidance


# SQLite by default; FUZZ_BACKENDS=sqlite,postgres fuzzes PostgreSQL too (as long again).
BACKENDS = os.environ.get("FUZZ_BACKENDS", "sqlite").split(",")


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz_city(
    request: pytest.FixtureRequest,
    db_factories: dict[str, DatabaseFactory],
    shared_nats_url: str,
    run_id: str,
    keys: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FuzzCity]:
    if request.param not in db_factories:
        pytest.skip(f"{request.param} is not reachable")
    namespace = f"t{run_id}fz{next(_stacks)}"
    # The gateway issues device credentials as deployed (its issuer keys from `cradle nats init`),
    # so the fuzzer meets that path's real answers rather than "not configured" 503s.
    trust = init_trust(tmp_path_factory.mktemp("trust"), namespace=namespace)
    with (
        start_blocking_portal() as portal,
        contextlib.ExitStack() as exits,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("GATEWAY_DEVICE_ISSUER_FILE", str(trust.device_issuer))
        env.setenv("GATEWAY_NATS_CLAIMS_CREDS", str(trust.creds_path(CLAIMS)))
        stack: Stack = exits.enter_context(
            portal.wrap_async_context_manager(
                start_stack(
                    databases=db_factories[request.param],
                    nats_url=shared_nats_url,
                    namespace=namespace,
                    keys=keys,
                    services=FUZZ_SERVICES,
                    overrides={
                        "monitoring": {"jobs_interval_seconds": 0},
                        "workforce": {"jobs_interval_seconds": 0},
                        # An event stream ends after a second (a client then resumes from its last
                        # id): each fuzzed call of it gets a whole reply instead of waiting out 600 s.
                        "delivery": {"stream_max_seconds": 1.0},
                    },
                )
            )
        )
        unlimited(stack)
        callers, estate, guidance = portal.call(seed, stack)
        loop = portal.call(_running_loop)
        yield FuzzCity(
            portal=portal,
            stack=stack,
            bridge=Bridge(stack.gateway, loop),
            callers=callers,
            estate=estate,
            guidance=guidance,
        )


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()
