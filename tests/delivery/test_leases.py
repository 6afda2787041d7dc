"""Leases are rows of `delivery_lease`, and the delivery tables have no foreign keys: on both
databases, a lapsed lease taken over counts the attempt it may have made; a subscription deleted
while its deliveries are out leaves no row behind and does not stop the sender from recording the
others; and on PostgreSQL a deletion waits for deliveries being owed to it, then removes them too
(what the foreign keys did, by locking the subscription once)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cradle.migrations import downgrade, upgrade
from services.delivery.config import DeliverySettings
from services.delivery.models import Delivery, DeliveryAttempt, DeliveryLease, EventRecord, Subscription
from services.delivery.service import subscriptions
from services.delivery.service.claims import Claimed
from services.delivery.service.log import ENABLED_SUBSCRIPTIONS, owe
from services.delivery.service.sender import Outcome, Sender
from shared.clock import utcnow
from shared.db import make_engine
from shared.identity import generate_keypair
from tests.support import DatabaseFactory

pytestmark = pytest.mark.asyncio

TABLES = (Delivery, DeliveryAttempt, DeliveryLease)


@dataclass
class Setting:
    engine: AsyncEngine
    maker: async_sessionmaker  # type: ignore[type-arg]
    settings: DeliverySettings
    senders: list[Sender] = field(default_factory=list)

    def sender(self) -> Sender:
        made = Sender(maker=self.maker, engine=self.engine, settings=self.settings)
        self.senders.append(made)
        return made

    async def rows_of(self, subscription_id: str) -> dict[str, int]:
        async with self.engine.connect() as connection:
            return {
                table.__tablename__: (
                    await connection.execute(
                        select(func.count())
                        .select_from(table)
                        .where(table.__table__.c.subscription_id == subscription_id)
                    )
                ).scalar_one()
                for table in TABLES
            }


@pytest.fixture
async def setting(databases: DatabaseFactory) -> AsyncIterator[Setting]:
    url = await databases.fresh("delivery")
    engine = make_engine(url)
    settings = DeliverySettings(database_url=url, internal_verify_key=generate_keypair()[1])
    made = Setting(engine=engine, maker=async_sessionmaker(engine, expire_on_commit=False), settings=settings)
    yield made
    for sender in made.senders:
        await sender._release_connection()
        sender.client.close()
    await engine.dispose()


async def subscribed(setting: Setting, *ids: str, events: int = 2) -> None:
    """Subscriptions `ids`, each owed the same `events` events (one subject each), due now."""
    now = utcnow()
    async with setting.engine.begin() as connection:
        for subscription_id in ids:
            await connection.execute(
                insert(Subscription.__table__).values(
                    id=subscription_id,
                    client_id="bureau",
                    identity={"client_id": "bureau", "kind": "bureau", "bureau": "EDU", "scopes": []},
                    url="http://127.0.0.1:9/hook",
                    event_types=["cradle.**"],
                    enabled=True,
                    secret="whsec_" + "A" * 43,
                    created_at=now,
                    updated_at=now,
                    version=1,
                )
            )
        for number in range(events):
            body = f'{{"id": "evt-{number}", "type": "cradle.registry.facility.submitted"}}'
            await connection.execute(
                insert(EventRecord.__table__).values(
                    event_id=f"evt-{number}", type="t", time=now, recorded_at=now, body=body
                )
            )
    async with setting.maker() as session, session.begin():
        seqs = (await session.execute(select(EventRecord.seq).order_by(EventRecord.seq))).scalars().all()
        await owe(session, [(s, seq, f"subject-{seq}") for s in ids for seq in seqs], now=now)


def finished(claimed: Claimed, *, delivered: bool = True) -> Outcome:
    return Outcome(
        claimed=claimed,
        attempted_at=utcnow(),
        delivered=delivered,
        status_code=204 if delivered else 500,
        latency_ms=1.0,
        error=None if delivered else "HTTP 500",
        excerpt=None,
    )


async def test_a_lapsed_lease_taken_over_counts_the_attempt_it_may_have_made(setting: Setting) -> None:
    await subscribed(setting, "s", events=1)
    first, second = setting.sender(), setting.sender()
    [taken] = await first.round()
    assert taken.attempt == 1
    # Its sender went quiet mid-attempt: the lease lapses and another replica claims the delivery.
    async with setting.engine.begin() as connection:
        await connection.execute(update(DeliveryLease).values(lease_until=utcnow() - timedelta(seconds=1)))
    [again] = await second.round()
    assert (again.delivery_id, again.attempt) == (taken.delivery_id, 2)
    assert await second.round() == []  # held now: not claimed twice

    # The first sender's late outcome is recorded as an attempt, but the lease is not its own now.
    first._results.append(finished(taken))
    await first.round(claiming=False)
    second._results.append(finished(again))
    assert await second.round() == []  # recorded as a round does (SQLite: in its one call)
    async with setting.engine.connect() as connection:
        delivery = (await connection.execute(select(Delivery.status, Delivery.attempts))).one()
        attempts = (
            await connection.execute(select(DeliveryAttempt.attempt).order_by(DeliveryAttempt.id))
        ).all()
        leases = (await connection.execute(select(func.count()).select_from(DeliveryLease))).scalar_one()
    assert tuple(delivery) == ("delivered", 2)
    assert [a for (a,) in attempts] == [1, 2]
    assert leases == 0


async def test_a_retry_ends_its_lease_and_keeps_its_count(setting: Setting) -> None:
    await subscribed(setting, "s", events=1)
    sender = setting.sender()
    [taken] = await sender.round()
    sender._results.append(finished(taken, delivered=False))
    await sender.round(claiming=False)
    async with setting.engine.connect() as connection:
        delivery = (await connection.execute(select(Delivery.status, Delivery.attempts))).one()
        leases = (await connection.execute(select(func.count()).select_from(DeliveryLease))).scalar_one()
    assert tuple(delivery) == ("pending", 1)
    assert leases == 0


async def test_a_subscription_deleted_while_its_deliveries_are_out_leaves_nothing_behind(
    setting: Setting,
) -> None:
    await subscribed(setting, "gone", "kept", events=2)
    sender = setting.sender()
    claimed = await sender.round()
    assert len(claimed) == 4
    # One of each was sent and recorded before the deletion; the other two finish after it.
    early = [next(c for c in claimed if c.subscription_id == s) for s in ("gone", "kept")]
    sender._results.extend(finished(c) for c in early)
    await sender.round(claiming=False)
    async with setting.maker() as session, session.begin():
        subscription = await session.get(Subscription, "gone")
        assert subscription is not None
        await subscriptions.delete(session=session, subscription=subscription)
    sender._results.extend(finished(c) for c in claimed if c not in early)

    # Recorded as a round does (SQLite: in its one call): no error for the deleted one.
    assert await sender.round() == []

    assert not sender._results
    assert await setting.rows_of("gone") == {"delivery": 0, "delivery_attempt": 0, "delivery_lease": 0}
    assert await setting.rows_of("kept") == {"delivery": 2, "delivery_attempt": 2, "delivery_lease": 0}


# SQLite has one writer: a deletion waits for the owing transaction by the database's own lock.
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_deletion_waits_for_deliveries_being_owed_and_removes_them(setting: Setting) -> None:
    await subscribed(setting, "s", events=2)
    async with setting.maker() as owing, owing.begin():
        # As the consumers owe a batch's deliveries: the subscriptions read (and held), then rows.
        held = (await owing.execute(ENABLED_SUBSCRIPTIONS)).all()
        assert [row[0] for row in held] == ["s"]

        async def delete() -> None:
            async with setting.maker() as session, session.begin():
                subscription = await session.get(Subscription, "s")
                assert subscription is not None
                await subscriptions.delete(session=session, subscription=subscription)

        deleting = asyncio.create_task(delete())
        await asyncio.sleep(0.3)
        assert not deleting.done()  # it waits for the owing transaction
        seq = (await owing.execute(select(func.max(EventRecord.seq)))).scalar_one()
        await owe(owing, [("s", seq, "late")], now=utcnow())
    await asyncio.wait_for(deleting, 60)  # at once, once the owing commits; a loaded machine waits
    assert await setting.rows_of("s") == {"delivery": 0, "delivery_attempt": 0, "delivery_lease": 0}


async def test_the_upgrade_moves_held_leases_to_their_table_and_back(databases: DatabaseFactory) -> None:
    """delivery_0005 on a database with a delivery leased and one not: the lease becomes a row with
    the attempt it was for, and the delivery counts the attempts recorded; the downgrade restores."""
    url = await databases.fresh("delivery")
    await asyncio.to_thread(downgrade, "delivery", url, "delivery_0004")
    engine = make_engine(url)
    now = utcnow()
    later = now + timedelta(seconds=30)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO subscription (id, client_id, identity, url, event_types, enabled, secret, "
                    "created_at, updated_at, version) VALUES ('s', 'c', '{}', 'http://x', '[]', true, 'x', "
                    ":now, :now, 1)"
                ),
                {"now": now},
            )
            await connection.execute(
                text(
                    "INSERT INTO event_record (seq, event_id, type, time, recorded_at, body) "
                    "VALUES (1, 'e', 't', :now, :now, '{}')"
                ),
                {"now": now},
            )
            await connection.execute(
                text(
                    "INSERT INTO delivery (id, subscription_id, event_seq, order_key, status, attempts, "
                    "next_attempt_at, lease_until, leased_by, created_at) VALUES "
                    "(1, 's', 1, 'k', 'pending', 3, :now, :later, 'w', :now), "
                    "(2, 's', 1, 'k', 'pending', 1, :now, NULL, NULL, :now)"
                ),
                {"now": now, "later": later},
            )
        await asyncio.to_thread(upgrade, "delivery", url)
        async with engine.connect() as connection:
            leases = (
                await connection.execute(text("SELECT delivery_id, leased_by, attempt FROM delivery_lease"))
            ).all()
            counts = (await connection.execute(text("SELECT id, attempts FROM delivery ORDER BY id"))).all()
        assert [tuple(row) for row in leases] == [(1, "w", 3)]
        assert [tuple(row) for row in counts] == [(1, 2), (2, 1)]

        await asyncio.to_thread(downgrade, "delivery", url, "delivery_0004")
        async with engine.connect() as connection:
            rows = (
                await connection.execute(text("SELECT id, attempts, leased_by FROM delivery ORDER BY id"))
            ).all()
        assert [tuple(row) for row in rows] == [(1, 3, "w"), (2, 1, None)]
    finally:
        await engine.dispose()
