"""Several replicas on one PostgreSQL database: both consume the streams (one durable, shared) and
both send, each delivery claimed by one of them (a `delivery_lease` row per delivery: its key, and
the delivery locked FOR SHARE SKIP LOCKED)."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from services.delivery.app import create_app
from services.delivery.models import Delivery, DeliveryAttempt
from tests.delivery.conftest import City, auth, receiving, start_city
from tests.support import DatabaseFactory, eventually, running

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def twins(
    db_factories: dict[str, DatabaseFactory], shared_nats_url: str, run_id: str, keys: dict[str, Any]
) -> AsyncIterator[City]:
    if "postgres" not in db_factories:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    async with contextlib.AsyncExitStack() as stack:
        city_stack = await stack.enter_async_context(
            await start_city(
                databases=db_factories["postgres"],
                nats_url=shared_nats_url,
                namespace=f"t{run_id}r1",
                keys=keys,
            )
        )
        first = city_stack.apps["delivery"]
        second = create_app(first.state.settings.model_copy())  # the same database, the same durables
        await stack.enter_async_context(running(second))
        receiver = await stack.enter_async_context(receiving())
        await eventually(lambda: first.state.bus.connected and second.state.bus.connected)
        yield City(stack=city_stack, receiver=receiver, nats_url=shared_nats_url, backend="postgres")


async def test_two_replicas_deliver_each_event_once(twins: City) -> None:
    bureau = await twins.bureau()
    url = twins.receiver.endpoint()
    subscription = await twins.subscribe(bureau, url, ["cradle.registry.facility.submitted"])
    operator = await twins.operator()
    made = [await twins.facility(operator) for _ in range(20)]

    await eventually(lambda: len(twins.receiver.at(url)) >= len(made), timeout=60)
    await eventually(lambda: _all_settled(twins, subscription["id"]))
    ids = Counter(r.headers["webhook-id"] for r in twins.receiver.at(url))
    assert len(ids) == len(made) and set(ids.values()) == {1}
    assert {e["data"]["facility_id"] for e in twins.receiver.events_at(url)} == {f["id"] for f in made}
    async with twins.delivery.state.sessionmaker() as session:
        sent = (
            await session.execute(
                select(DeliveryAttempt.delivery_id, func.count())
                .where(DeliveryAttempt.subscription_id == subscription["id"])
                .group_by(DeliveryAttempt.delivery_id)
            )
        ).all()
    assert len(sent) == len(made) and {count for _, count in sent} == {1}
    page = await twins.client.get(f"/v1/subscriptions/{subscription['id']}/deliveries", headers=auth(bureau))
    assert {a["outcome"] for a in page.json()["items"]} == {"delivered"}


async def _all_settled(city: City, subscription_id: str) -> bool:
    async with city.delivery.state.sessionmaker() as session:
        pending = (
            await session.execute(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.subscription_id == subscription_id, Delivery.status == "pending")
            )
        ).scalar_one()
    return pending == 0
