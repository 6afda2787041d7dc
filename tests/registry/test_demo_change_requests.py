"""`cradle seed-demo`'s change requests to licensed facts, on both databases: about one approved
facility in forty asks, every licensing department is named, the approved ones changed the facts
(with a version and an event), the rejected ones name why, the rest wait for some department; the
events wait in the outbox; a second run adds nothing."""

from __future__ import annotations

import json

from sqlalchemy import select

from cradle.seed.change_requests import ONE_IN, seed_change_requests
from cradle.seed.registry import seed_facilities
from services.registry.models import ChangeRequest, ChangeRequestReview, Facility, FacilityVersion, outbox
from services.registry.service.change_requests import awaiting
from shared.db import make_engine
from tests.support import DatabaseFactory

REQUIRED = ["EDU", "HEALTH", "FIRE", "SAMR"]


async def test_seeded_changes_of_licensed_facts_are_reviewed_like_real_ones(
    databases: DatabaseFactory,
) -> None:
    engine = make_engine(await databases.fresh("registry"))
    try:
        await seed_facilities(engine, count=1200, seed=3)
        report = await seed_change_requests(engine, namespace="demo", seed=3)
        again = await seed_change_requests(engine, namespace="demo", seed=3)
        async with engine.connect() as connection:
            facilities = {f.id: f for f in (await connection.execute(select(Facility.__table__))).all()}
            requests = (await connection.execute(select(ChangeRequest.__table__))).all()
            reviews = (await connection.execute(select(ChangeRequestReview.__table__))).all()
            versions = (await connection.execute(select(FacilityVersion.__table__))).all()
            payloads = [json.loads(p) for p in (await connection.execute(select(outbox.c.payload))).scalars()]
    finally:
        await engine.dispose()

    assert (again.asked, again.approved, again.rejected) == (0, 0, 0)  # once per database
    approved_facilities = [f for f in facilities.values() if f.status == "approved"]
    assert report.asked == len(requests)
    assert len(approved_facilities) / (2 * ONE_IN) < len(requests) < 2 * len(approved_facilities) / ONE_IN
    assert all(r.kind == "facts" and r.departments == REQUIRED for r in requests)
    by_request: dict[str, list] = {}
    for review in sorted(reviews, key=lambda r: r.reviewed_at):
        by_request.setdefault(review.change_request_id, []).append(review)
    statuses = {r.status for r in requests}
    assert statuses == {"approved", "rejected", "pending"}, statuses
    assert report.approved == sum(r.status == "approved" for r in requests) > 0
    assert report.rejected == sum(r.status == "rejected" for r in requests) > 0
    for request in requests:
        facility = facilities[request.facility_id]
        mine = by_request.get(request.id, [])
        if request.status == "approved":
            assert awaiting(request.departments, mine) == [] and request.decided_at is not None
            if "capacity" in request.changes:
                places = {a: getattr(facility, f"capacity_{a}") for a in ("infant", "toddler", "preschool")}
                assert places == request.changes["capacity"]
                classes = {a: getattr(facility, f"classes_{a}") for a in ("infant", "toddler", "preschool")}
                assert classes == request.changes["classes"]
            else:
                assert facility.address == request.changes["address"] and request.reason
        elif request.status == "rejected":
            [rejection] = [r for r in mine if r.decision == "reject"]
            assert rejection.note
            assert facility.address != request.changes.get("address")
        else:
            assert awaiting(request.departments, mine) and all(r.decision == "approve" for r in mine)
    versioned = {v.facility_id for v in versions}
    assert versioned == {r.facility_id for r in requests if r.status == "approved"}

    types = [p["type"].removeprefix("cradle.registry.") for p in payloads]
    assert types.count("change_request.opened") == len(requests)
    assert types.count("change_request.decided") == report.approved + report.rejected
    assert types.count("facility.updated") == report.approved
