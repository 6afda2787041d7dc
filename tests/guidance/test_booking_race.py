"""No overbooking under concurrent requests: many families book the last places of a session at the
same moment, again and again. The place is taken by a conditional UPDATE (`booked < capacity`):
on PostgreSQL the row lock makes the later updates re-check the condition, on SQLite writers queue."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from services.guidance.models import Booking, GuidanceSession
from tests.guidance.conftest import Guide, start_guide
from tests.support import DatabaseFactory

pytestmark = pytest.mark.asyncio(loop_scope="module")
ROUNDS = 5


async def test_concurrent_bookings_never_pass_the_capacity(guide: Guide) -> None:
    families, capacity = (30, 5) if guide.backend == "postgres" else (12, 4)
    parents = [(await guide.parent_with_family())[0] for _ in range(families)]
    for round_ in range(ROUNDS):
        session = await guide.session(
            capacity=capacity,
            title=f"育儿加油站 第{round_ + 1}场",
            starts_at=(datetime.now(UTC) + timedelta(days=3)).isoformat(),
        )
        replies = await asyncio.gather(*(guide.book(session["id"], headers) for headers in parents))
        outcome = Counter(r.status_code for r in replies)
        assert outcome == {201: capacity, 409: families - capacity}, (
            round_,
            outcome,
            [r.text for r in replies][:3],
        )
        assert all(r.json()["type"] == "/problems/session-full" for r in replies if r.status_code == 409)
        async with guide.app.state.sessionmaker() as db:
            booked = (
                await db.execute(select(GuidanceSession.booked).where(GuidanceSession.id == session["id"]))
            ).scalar_one()
            rows = (
                await db.execute(
                    select(func.count()).select_from(Booking).where(Booking.session_id == session["id"])
                )
            ).scalar_one()
        assert booked == rows == capacity


async def test_cancellations_racing_bookings_keep_the_count_exact(guide: Guide) -> None:
    capacity = 3
    session = await guide.session(
        capacity=capacity, starts_at=(datetime.now(UTC) + timedelta(days=3)).isoformat()
    )
    holders = [await guide.parent_with_family() for _ in range(capacity)]
    bookings = [(await guide.book(session["id"], h)).json()["id"] for h, _ in holders]
    newcomers = [(await guide.parent_with_family())[0] for _ in range(6)]
    cancels = [
        guide.direct.post(f"/v1/sessions/{session['id']}/bookings/{b}/cancel", headers=h)
        for b, (h, _) in zip(bookings, holders, strict=True)
    ]
    replies = await asyncio.gather(*cancels, *(guide.book(session["id"], h) for h in newcomers))
    assert all(r.status_code == 200 for r in replies[:capacity])
    won = sum(1 for r in replies[capacity:] if r.status_code == 201)
    assert 0 <= won <= capacity
    async with guide.app.state.sessionmaker() as db:
        booked = (
            await db.execute(select(GuidanceSession.booked).where(GuidanceSession.id == session["id"]))
        ).scalar_one()
        active = (
            await db.execute(
                select(func.count())
                .select_from(Booking)
                .where(Booking.session_id == session["id"], Booking.status == "booked")
            )
        ).scalar_one()
    assert booked == active == won


async def test_a_burst_beyond_the_pool_queues_for_a_connection(
    backend: str,
    db_factories: dict[str, DatabaseFactory],
    shared_nats_url: str,
    run_id: str,
    keys: dict[str, Any],
) -> None:
    """Fifteen concurrent bookings through a pool of two connections: the thirteen that find none
    free wait for one (db_pool_timeout_seconds) instead of failing with a 503."""
    families, capacity = 15, 4
    async with start_guide(
        databases=db_factories[backend],
        nats_url=shared_nats_url,
        namespace=f"t{run_id}pool{backend}",
        keys=keys,
        db_pool_size=1,
        db_max_overflow=1,
    ) as small:
        assert small.app.state.engine.pool.size() == 1
        parents = [(await small.parent_with_family())[0] for _ in range(families)]
        session = await small.session(
            capacity=capacity, starts_at=(datetime.now(UTC) + timedelta(days=3)).isoformat()
        )
        replies = await asyncio.gather(*(small.book(session["id"], headers) for headers in parents))
        outcome = Counter(r.status_code for r in replies)
        assert outcome == {201: capacity, 409: families - capacity}, (outcome, [r.text for r in replies][:3])
