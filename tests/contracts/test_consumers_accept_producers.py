"""Contract tests: whatever a producer may emit (payloads generated from its contract's schema),
every consumer of that type accepts, on a real database built by the migrations. A consumer may
ignore an event or wait for a fact it lacks (LookupError: "not yet known", redelivered later) or
refuse it on domain grounds, but it never fails to read it, and its tables hold every value.

The services run for real (their lifespans, sessions and outboxes: a handler that emits has its
event checked against its contract too), on an event loop of the module's own, so hypothesis can
drive each example and shrink a failure to its smallest payload. They get no broker: nothing but
the examples reaches the handlers, and their outboxes simply keep what they emit. A service whose
consumers handle fetched batches together (delivery) gets each example through its batch handler
too, as a batch of its own."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import DBAPIError, StatementError

from services.delivery.handlers import HANDLERS as DELIVERY
from services.delivery.handlers import on_events as delivery_batch
from services.monitoring.handlers import HANDLERS as MONITORING
from services.registry.handlers import HANDLERS as REGISTRY
from services.workforce.handlers import HANDLERS as WORKFORCE
from shared.contracts import EVENT_MODELS
from shared.contracts.registry import FacilitySubmitted
from shared.events.consumer import BatchHandler, Handler
from shared.events.envelope import CloudEvent
from tests.conftest import SERVICES, service_settings
from tests.contracts.strategies import payloads
from tests.support import DatabaseFactory, running

CONSUMERS: dict[str, dict[str, Handler]] = {
    "registry": REGISTRY,
    "workforce": WORKFORCE,
    "monitoring": MONITORING,
    "delivery": DELIVERY,
}
BATCH_CONSUMERS: dict[str, BatchHandler] = {"delivery": delivery_batch}
CONSUMED = sorted({event_type for handlers in CONSUMERS.values() for event_type in handlers})
# Per type and backend: PostgreSQL holds values to their column types (SQLite does not), so it
# finds more, but each example costs it more; together ~30 s on a quiet machine.
EXAMPLES = {"sqlite": 10, "postgres": 5}
NO_BROKER = "nats://127.0.0.1:1"  # nothing listens: the bus keeps trying, quietly, in the background
# A consumer that cannot read a payload, or whose tables cannot hold it: the contract and the
# consumer disagree. (KeyError is a LookupError, but never a "not yet known".)
DISAGREEMENTS = (ValueError, TypeError, KeyError, AttributeError, DBAPIError, StatementError)


@dataclass
class Harness:
    backend: str
    loop: asyncio.AbstractEventLoop
    apps: dict[str, FastAPI]
    facility: st.SearchStrategy[dict[str, Any]]

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def deliver(self, service: str, event_type: str, data: dict[str, Any]) -> None:
        event = CloudEvent(source=f"/cradle/{event_type.split('.')[1]}", type=event_type, data=data)
        async with self.apps[service].state.sessionmaker() as session, session.begin():
            await CONSUMERS[service][event_type](event, session)
        if service in BATCH_CONSUMERS:
            again = event.model_copy(update={"id": str(uuid.uuid4())})  # another event, the same facts
            async with self.apps[service].state.sessionmaker() as session, session.begin():
                await BATCH_CONSUMERS[service]([again], session)


def facility_ids(data: dict[str, Any]) -> set[str]:
    """The facilities an event names: the consumers that project facilities learn of them first."""
    found = {data["facility_id"]} if isinstance(data.get("facility_id"), str) else set()
    found |= {place["facility_id"] for place in data.get("facilities", []) if "facility_id" in place}
    return found


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def harness(
    request: pytest.FixtureRequest,
    db_factories: dict[str, DatabaseFactory],
    keys: dict[str, Any],
    run_id: str,
) -> Iterator[Harness]:
    if request.param not in db_factories:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    databases = db_factories[request.param]
    namespace = f"t{run_id}c{secrets.token_hex(3)}"
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    apps: dict[str, FastAPI] = {}

    async def start() -> None:
        for name in CONSUMERS:
            settings_class, create = SERVICES[name]
            overrides = {"jobs_interval_seconds": 0} if name in ("monitoring", "workforce") else {}
            app = create(
                service_settings(
                    settings_class,
                    url=await databases.fresh(name),
                    nats_url=NO_BROKER,
                    namespace=namespace,
                    keys=keys,
                    **overrides,
                )
            )
            apps[name] = await stack.enter_async_context(running(app))

    try:
        loop.run_until_complete(start())
        yield Harness(backend=request.param, loop=loop, apps=apps, facility=payloads(FacilitySubmitted))
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()


@pytest.mark.parametrize("event_type", CONSUMED)
def test_every_consumer_reads_whatever_its_producer_may_emit(harness: Harness, event_type: str) -> None:
    model = EVENT_MODELS[event_type]
    consumers = [service for service, handlers in CONSUMERS.items() if event_type in handlers]

    @settings(
        max_examples=EXAMPLES[harness.backend],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(data=payloads(model), facility=harness.facility, known=st.booleans())
    def check(data: dict[str, Any], facility: dict[str, Any], known: bool) -> None:
        for service in consumers:
            if known and "cradle.registry.facility.submitted" in CONSUMERS[service]:
                # Half the examples find the facilities known, so handlers go past "not yet known".
                for facility_id in facility_ids(data):
                    facts = facility | {"facility_id": facility_id, "version": 1}
                    harness.run(harness.deliver(service, "cradle.registry.facility.submitted", facts))
            try:
                harness.run(harness.deliver(service, event_type, data))
            except DISAGREEMENTS as exc:
                raise AssertionError(
                    f"{service} cannot take {event_type}: {type(exc).__name__}: {exc}"
                ) from exc
            except LookupError:
                pass  # not yet known: the runner redelivers it later
            except Exception as exc:  # a refusal on domain grounds is the consumer's right
                assert type(exc).__module__.startswith("services."), exc

    check()
