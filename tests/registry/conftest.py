"""Clients and steps the registry tests share."""

from __future__ import annotations

import json
from typing import Any

import nats
import pytest
from sqlalchemy import func, select

from shared.events.streams import Namespace
from tests.conftest import Stack, facility_body
from tests.support import eventually

REQUIRED = ("EDU", "HEALTH", "FIRE", "SAMR")


class Registry:
    """A stack with the clients a registry scenario needs: an operator, the four reviewing bureaus,
    a district, and helpers that act as them."""

    def __init__(self, stack: Stack, clients: dict[str, dict[str, str]]) -> None:
        self.stack = stack
        self.client = stack.client
        self.clients = clients

    def __getitem__(self, who: str) -> dict[str, str]:
        return self.clients[who]

    async def submit(self, who: str = "operator", **overrides: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/facilities", json=facility_body(**overrides), headers=self[who]
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def review(
        self, facility_id: str, department: str, decision: str = "approve", note: str = ""
    ) -> Any:
        return await self.client.post(
            f"/v1/facilities/{facility_id}/reviews",
            json={"department": department, "decision": decision, "note": note},
            headers=self[department],
        )

    async def approved(self, who: str = "operator", **overrides: Any) -> dict[str, Any]:
        facility = await self.submit(who, **overrides)
        for department in REQUIRED:
            response = await self.review(facility["id"], department)
            assert response.status_code == 200, response.text
        return response.json()

    async def settled(self) -> None:
        """Wait until the registry's outbox has published everything committed so far."""
        outbox = self.stack.registry.state.relay.table

        async def drained() -> bool:
            async with self.stack.registry.state.sessionmaker() as session:
                pending = select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
                return (await session.execute(pending)).scalar_one() == 0

        await eventually(drained)

    async def events(self, event_type: str) -> list[dict[str, Any]]:
        """The CloudEvents of this type on the registry's stream (real NATS), once all are out."""
        await self.settled()
        ns = Namespace(self.stack.namespace)
        nc = await nats.connect(self.stack.registry.state.settings.nats_url)
        try:
            js = nc.jetstream()
            stream = ns.stream("registry")
            total = (await js.stream_info(stream)).state.messages
            found = []
            for seq in range(1, total + 1):
                message = await js.get_msg(stream, seq)
                if message.subject == ns.subject(event_type):
                    found.append(json.loads(message.data))
            return found
        finally:
            await nc.close()


CLIENTS: dict[str, dict[str, Any]] = {
    "operator": {"name": "小太阳托育", "kind": "operator", "scopes": ["registry:read", "registry:write"]},
    "other_operator": {
        "name": "另一家托育",
        "kind": "operator",
        "scopes": ["registry:read", "registry:write"],
    },
    "district": {
        "name": "徐汇区托育服务指导中心",
        "kind": "district",
        "district_code": "310104",
        "scopes": ["registry:read", "registry:review", "registry:write"],
    },
    "other_district": {
        "name": "黄浦区托育服务指导中心",
        "kind": "district",
        "district_code": "310101",
        "scopes": ["registry:read", "registry:review"],
    },
    "POLICE": {
        "name": "市公安局",
        "kind": "bureau",
        "bureau": "POLICE",
        "scopes": ["registry:read", "registry:review"],
    },
    **{
        department: {
            "name": name,
            "kind": "bureau",
            "bureau": department,
            "scopes": ["registry:read", "registry:review", "indicators:read"],
        }
        for department, name in {
            "EDU": "市教委",
            "HEALTH": "市卫健委",
            "FIRE": "市消防救援总队",
            "SAMR": "市市场监管局",
        }.items()
    },
}


@pytest.fixture
async def registry(stack: Stack) -> Registry:
    return Registry(stack, {who: await stack.headers_for(**body) for who, body in CLIENTS.items()})
