"""The sender's slots: a subscription's deliveries leased ahead wait in the process for one of its
`per_subscription_in_flight` slots (never more at once to one receiver), another subscription's are
sent meanwhile, a delivery whose lease would lapse before its attempt's deadline is not sent, and
what was leased and never sent is given back at a stop."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from cradle.migrations import upgrade
from services.delivery.config import DeliverySettings
from services.delivery.models import Delivery, DeliveryLease, EventRecord, Subscription
from services.delivery.service.claims import Claimed
from services.delivery.service.sender import Outcome, Sender
from shared.clock import utcnow
from shared.identity import generate_keypair
from tests.support import eventually

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def sender(tmp_path) -> AsyncIterator[Sender]:  # type: ignore[no-untyped-def]
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    settings = DeliverySettings(
        database_url=str(engine.url),
        internal_verify_key=generate_keypair()[1],
        per_subscription_in_flight=2,
        per_subscription_leased=8,
        workers=16,
        attempt_timeout_seconds=10,
    )
    made = Sender(maker=async_sessionmaker(engine), engine=engine, settings=settings)
    yield made
    for task in made._workers:
        task.cancel()
    await asyncio.gather(*made._workers, return_exceptions=True)
    await engine.dispose()


def claimed(subscription_id: str, number: int, *, lease_seconds: float = 60) -> Claimed:
    return Claimed(
        delivery_id=number,
        subscription_id=subscription_id,
        attempt=1,
        event_id=f"evt-{number}",
        event_type="cradle.registry.facility.submitted",
        url="http://127.0.0.1:9/hook",
        secrets=[],
        body=b"{}",
        lease_until=utcnow() + timedelta(seconds=lease_seconds),
    )


def hold(sender: Sender, items: list[Claimed]) -> None:
    """As the claim loop hands a round's claims over."""
    for item in items:
        sender._held.setdefault(item.subscription_id, collections.deque()).append(item)
    for subscription_id in {item.subscription_id for item in items}:
        sender._dispatch(subscription_id)


async def test_a_subscriptions_leased_deliveries_go_out_two_at_a_time_and_hold_back_no_other(
    sender: Sender,
) -> None:
    under_way: collections.Counter[str] = collections.Counter()
    most: collections.Counter[str] = collections.Counter()
    sent: list[int] = []
    slow_may_answer = asyncio.Event()

    async def attempt(item: Claimed) -> Outcome:
        under_way[item.subscription_id] += 1
        most[item.subscription_id] = max(most[item.subscription_id], under_way[item.subscription_id])
        try:
            if item.subscription_id == "slow":
                await slow_may_answer.wait()
            await asyncio.sleep(0)
            sent.append(item.delivery_id)
        finally:
            under_way[item.subscription_id] -= 1
        return Outcome(item, utcnow(), True, 204, 1.0, None, None)

    sender._attempt = attempt  # type: ignore[method-assign]
    sender.start_workers()
    hold(sender, [claimed("slow", n) for n in range(1, 9)] + [claimed("quick", n) for n in range(11, 19)])

    await eventually(lambda: len(sent) >= 8)
    # Every quick one went while the slow receiver held its two slots; its other six wait.
    assert sorted(sent) == list(range(11, 19))
    assert under_way["slow"] == 2 and len(sender._held["slow"]) == 6
    slow_may_answer.set()
    await eventually(lambda: len(sent) >= 16)
    assert most == {"slow": 2, "quick": 2}
    assert [n for n in sent if n < 10] == list(range(1, 9))  # each in the order claimed
    assert len(sender._results) == 16 and not sender._held and not sender._in_flight


async def test_a_delivery_whose_lease_would_lapse_before_its_deadline_is_not_sent(sender: Sender) -> None:
    sent: list[int] = []

    async def attempt(item: Claimed) -> Outcome:
        sent.append(item.delivery_id)
        return Outcome(item, utcnow(), True, 204, 1.0, None, None)

    sender._attempt = attempt  # type: ignore[method-assign]
    sender.start_workers()
    # 5 s of lease left, a 10 s deadline: another replica may claim it while it is under way.
    hold(sender, [claimed("a", 1, lease_seconds=5), claimed("a", 2), claimed("a", 3)])
    await eventually(lambda: len(sent) >= 2)
    # 1 was taken first and dropped at once (no await between): 3 went in its slot.
    assert sent == [2, 3]
    assert [o.claimed.delivery_id for o in sender._results] == [2, 3]  # nothing recorded for it
    assert not sender._in_flight  # its slot was freed all the same


async def test_the_last_round_gives_back_the_leases_of_what_was_never_sent(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'delivery.db'}"
    await asyncio.to_thread(upgrade, "delivery", url)
    engine = create_async_engine(url)
    settings = DeliverySettings(database_url=url, internal_verify_key=generate_keypair()[1])
    made = Sender(maker=async_sessionmaker(engine), engine=engine, settings=settings)
    now = utcnow()
    lease = now + timedelta(seconds=60)
    async with engine.begin() as connection:
        await connection.execute(
            insert(Subscription.__table__).values(
                id="s",
                client_id="c",
                identity={},
                url="http://127.0.0.1:9/",
                event_types=["cradle.**"],
                enabled=True,
                secret="whsec_x",
                created_at=now,
                updated_at=now,
                version=1,
            )
        )
        seq = (
            await connection.execute(
                insert(EventRecord.__table__)
                .values(event_id="e", type="t", time=now, recorded_at=now, body="{}")
                .returning(EventRecord.__table__.c.seq)
            )
        ).scalar_one()
        for number in (1, 2, 3):
            await connection.execute(
                insert(Delivery.__table__).values(
                    id=number,
                    subscription_id="s",
                    event_seq=seq,
                    order_key=f"k{number}",
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
            await connection.execute(
                insert(DeliveryLease.__table__).values(
                    delivery_id=number,
                    subscription_id="s",
                    lease_until=lease,
                    leased_by=made.worker_id,
                    attempt=1,
                )
            )
    # 1 is under way (its worker stopped mid-attempt: it may have been sent), 2 waits for a worker,
    # 3 for a slot.
    made._due.put_nowait(claimed("s", 2))
    made._held["s"] = collections.deque([claimed("s", 3)])
    await made.round(claiming=False)
    await made._release_connection()
    async with engine.connect() as connection:
        leases = (
            await connection.execute(
                select(DeliveryLease.delivery_id, DeliveryLease.attempt, DeliveryLease.leased_by).order_by(
                    DeliveryLease.delivery_id
                )
            )
        ).all()
        attempts = (await connection.execute(select(Delivery.attempts).order_by(Delivery.id))).scalars().all()
    await engine.dispose()
    assert [tuple(row) for row in leases] == [(1, 1, made.worker_id)]  # its attempt counted, when it lapses
    assert attempts == [0, 0, 0]  # none recorded
