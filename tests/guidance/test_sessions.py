"""Sessions and events: who schedules what, booking from the app, full / past / cancelled sessions,
double bookings, cancellation freeing the place, attendance by the organiser, and the events."""

from __future__ import annotations

import asyncio

import pytest

from tests.guidance.conftest import HUANGPU, XUHUI, Guide, from_now

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_levels_decide_who_schedules(guide: Guide) -> None:
    station = await guide.station(name="枫林街道指导站")
    at_station = await guide.session(
        level="station", place_id=station["id"], kind="course", district_code=None, venue=""
    )
    assert at_station["district_code"] == XUHUI and at_station["town_code"] == station["town_code"]
    assert at_station["venue"] == "枫林街道指导站" and at_station["places_left"] == 20

    city_body = {
        "level": "city",
        "kind": "carnival",
        "title": "上海市亲子嘉年华",
        "starts_at": from_now(days=30),
        "capacity": 500,
    }
    assert (
        await guide.direct.post("/v1/sessions", json=city_body, headers=guide.district())
    ).status_code == 403
    city = await guide.direct.post("/v1/sessions", json=city_body, headers=guide.bureau())
    assert city.status_code == 201 and city.json()["district_code"] is None
    elsewhere = await guide.direct.post(
        "/v1/sessions",
        json={**city_body, "level": "district", "district_code": HUANGPU},
        headers=guide.district(XUHUI),
    )
    assert elsewhere.status_code == 403
    assert (
        await guide.direct.post("/v1/sessions", json=city_body, headers=guide.parent())
    ).status_code == 403

    scheduled = {e.subject for e in await guide.events("cradle.guidance.session.scheduled")}
    assert {at_station["id"], city.json()["id"]} <= scheduled


async def test_every_wrong_field_of_a_session_is_named(guide: Guide) -> None:
    response = await guide.direct.post(
        "/v1/sessions",
        json={
            "level": "station",
            "kind": "party",
            "title": "",
            "starts_at": "2026-12-01T09:00:00",
            "capacity": 0,
        },
        headers=guide.district(),
    )
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {
        "kind",
        "title",
        "starts_at",
        "capacity",
        "place_id",
    }
    inverted = await guide.direct.post(
        "/v1/sessions",
        json={
            "level": "district",
            "kind": "course",
            "title": "课",
            "starts_at": from_now(days=2),
            "ends_at": from_now(days=1),
            "capacity": 5,
        },
        headers=guide.district(),
    )
    assert {e["field"] for e in inverted.json()["errors"]} == {"ends_at", "district_code"}
    base = await guide.direct.post(
        "/v1/places",
        json={
            "kind": "development_base",
            "name": "徐汇区儿童早期发展基地",
            "district_code": XUHUI,
            "opened_on": "2022-01-01",
        },
        headers=guide.district(),
    )
    not_a_station = await guide.session(level="district", place_id=base.json()["id"], district_code=None)
    assert not_a_station["district_code"] == XUHUI
    wrong_place = await guide.direct.post(
        "/v1/sessions",
        json={
            "level": "station",
            "kind": "course",
            "title": "课",
            "starts_at": from_now(days=2),
            "capacity": 5,
            "place_id": base.json()["id"],
        },
        headers=guide.district(),
    )
    assert wrong_place.status_code == 422 and wrong_place.json()["errors"][0]["field"] == "place_id"


async def test_parents_book_a_place_and_a_full_session_refuses_the_next(guide: Guide) -> None:
    session = await guide.session(capacity=2, title="祖辈养育课堂", kind="grandparent_course")
    parents = [await guide.parent_with_family() for _ in range(3)]
    first = await guide.book(session["id"], parents[0][0])
    assert first.status_code == 201 and first.json()["family_id"] == parents[0][1]["id"]
    # A station books on behalf of a family of its district.
    second = await guide.book(session["id"], guide.district(), family_id=parents[1][1]["id"])
    assert second.status_code == 201
    full = await guide.book(session["id"], parents[2][0])
    assert full.status_code == 409 and full.json()["type"] == "/problems/session-full"
    read = await guide.direct.get(f"/v1/sessions/{session['id']}", headers=parents[2][0])
    assert read.json()["booked"] == 2 and read.json()["places_left"] == 0
    assert read.headers["etag"] == f'"{read.json()["version"]}"'

    booked = [e for e in await guide.events("cradle.guidance.session.booked") if e.subject == session["id"]]
    assert sorted(e.data["booked"] for e in booked) == [1, 2]
    assert {e.data["family_id"] for e in booked} == {parents[0][1]["id"], parents[1][1]["id"]}


async def test_a_family_books_a_session_once(guide: Guide) -> None:
    session = await guide.session(capacity=10)
    parent, family = await guide.parent_with_family()
    assert (await guide.book(session["id"], parent)).status_code == 201
    twice = await guide.book(session["id"], parent)
    assert twice.status_code == 409 and twice.json()["type"] == "/problems/already-booked"
    by_station = await guide.book(session["id"], guide.district(), family_id=family["id"])
    assert by_station.status_code == 409
    # Concurrent double bookings by one family: one wins, whatever the interleaving.
    other = await guide.session(capacity=10)
    codes = sorted(
        r.status_code for r in await asyncio.gather(*(guide.book(other["id"], parent) for _ in range(4)))
    )
    assert codes == [201, 409, 409, 409]
    read = await guide.direct.get(f"/v1/sessions/{other['id']}", headers=parent)
    assert read.json()["booked"] == 1


async def test_a_parent_books_only_for_its_own_linked_family(guide: Guide) -> None:
    session = await guide.session()
    parent, _ = await guide.parent_with_family()
    stranger = await guide.family()
    assert (await guide.book(session["id"], parent, family_id=stranger["id"])).status_code == 404
    unlinked = await guide.book(session["id"], guide.parent(claimed_family_id=stranger["id"]))
    assert unlinked.status_code == 409 and unlinked.json()["type"] == "/problems/not-linked"
    missing = await guide.book(session["id"], guide.district())
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "family_id"
    assert (await guide.book(str(stranger["id"]), parent)).status_code == 404  # no such session


async def test_past_and_started_sessions_take_no_bookings_or_cancellations(guide: Guide) -> None:
    parent, family = await guide.parent_with_family()
    past = await guide.session(starts_at=from_now(days=-3))
    refused = await guide.book(past["id"], parent)
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/session-closed"
    starting = await guide.session(starts_at=from_now(seconds=1.5))
    booking = await guide.book(starting["id"], parent)
    assert booking.status_code == 201
    await asyncio.sleep(1.6)
    late = await guide.direct.post(
        f"/v1/sessions/{starting['id']}/bookings/{booking.json()['id']}/cancel", headers=parent
    )
    assert late.status_code == 409
    # ... but attendance is recorded after the start.
    attended = await guide.direct.post(
        f"/v1/sessions/{starting['id']}/attendance",
        json={"family_ids": [family["id"]]},
        headers=guide.district(),
    )
    assert attended.status_code == 200 and attended.json()["attended"] == 1


async def test_cancelling_frees_the_place_and_the_family_may_book_again(guide: Guide) -> None:
    session = await guide.session(capacity=1)
    parent, family = await guide.parent_with_family()
    waiting, _ = await guide.parent_with_family()
    booking = (await guide.book(session["id"], parent)).json()
    assert (await guide.book(session["id"], waiting)).status_code == 409
    url = f"/v1/sessions/{session['id']}/bookings/{booking['id']}/cancel"
    assert (await guide.direct.post(url, headers=waiting)).status_code == 404  # not theirs
    cancelled = await guide.direct.post(url, headers=parent)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert (await guide.direct.post(url, headers=parent)).status_code == 409
    assert (await guide.book(session["id"], waiting)).status_code == 201
    assert (await guide.book(session["id"], parent)).status_code == 409  # full again
    mine = await guide.direct.get(f"/v1/families/{family['id']}/bookings", headers=parent)
    assert [(b["status"], b["session"]["id"]) for b in mine.json()["items"]] == [("cancelled", session["id"])]
    cancelled_events = [
        e for e in await guide.events("cradle.guidance.booking.cancelled") if e.subject == session["id"]
    ]
    assert len(cancelled_events) == 1 and cancelled_events[0].data["booked"] == 0


async def test_the_organiser_records_attendance_of_booked_families(guide: Guide) -> None:
    organiser = guide.district(client_id="district-310104-organiser")
    session = await guide.session(organiser, capacity=5)
    families = [await guide.parent_with_family() for _ in range(3)]
    for parent, _ in families[:2]:
        assert (await guide.book(session["id"], parent)).status_code == 201
    ids = [f["id"] for _, f in families]
    url = f"/v1/sessions/{session['id']}/attendance"
    unbooked = await guide.direct.post(url, json={"family_ids": ids}, headers=organiser)
    assert unbooked.status_code == 422 and [e["field"] for e in unbooked.json()["errors"]] == ["family_ids.2"]
    assert (
        await guide.direct.post(url, json={"family_ids": ids[:2]}, headers=families[0][0])
    ).status_code == 403
    assert (
        await guide.direct.post(url, json={"family_ids": ids[:2]}, headers=guide.district(HUANGPU))
    ).status_code == 403
    recorded = await guide.direct.post(url, json={"family_ids": ids[:2]}, headers=organiser)
    assert recorded.status_code == 200 and recorded.json() == {
        "session_id": session["id"],
        "recorded": 2,
        "attended": 2,
    }
    corrected = await guide.direct.post(
        url, json={"family_ids": ids[1:2], "attended": False}, headers=guide.bureau()
    )
    assert corrected.json()["attended"] == 1
    bookings = await guide.direct.get(f"/v1/sessions/{session['id']}/bookings", headers=organiser)
    assert sorted(b["attended"] for b in bookings.json()["items"]) == [False, True]
    assert (
        await guide.direct.get(f"/v1/sessions/{session['id']}/bookings", headers=families[0][0])
    ).status_code == 403
    attended = [
        e for e in await guide.events("cradle.guidance.session.attended") if e.subject == session["id"]
    ]
    assert sorted((e.data["family_id"], e.data["attended"]) for e in attended) == sorted(
        [(ids[0], True), (ids[1], True), (ids[1], False)]
    )


async def test_sessions_are_listed_soonest_first_with_filters(guide: Guide) -> None:
    station = await guide.station(town_code="310104008", name="漕河泾街道指导站")
    later = await guide.session(
        level="station", place_id=station["id"], district_code=None, starts_at=from_now(days=20)
    )
    sooner = await guide.session(
        level="station", place_id=station["id"], district_code=None, starts_at=from_now(days=10)
    )
    seen, cursor = [], None
    while True:
        params = {"place_id": station["id"], "limit": 1} | ({"cursor": cursor} if cursor else {})
        page = (await guide.direct.get("/v1/sessions", params=params, headers=guide.parent())).json()
        seen += [s["id"] for s in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [sooner["id"], later["id"]]
    window = await guide.direct.get(
        "/v1/sessions",
        params={"place_id": station["id"], "from": from_now(days=15), "to": from_now(days=25)},
        headers=guide.parent(),
    )
    assert [s["id"] for s in window.json()["items"]] == [later["id"]]
    naive = await guide.direct.get(
        "/v1/sessions", params={"from": "2026-12-01T00:00:00"}, headers=guide.parent()
    )
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "from"
