"""Webhooks through the gateway: signed per Standard Webhooks, only what the subscriber may read,
retried until the receiver recovers, never held back by another's dead receiver."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from sqlalchemy import update
from standardwebhooks import Webhook
from structlog.contextvars import merge_contextvars
from structlog.testing import LogCapture

from services.delivery.models import Subscription
from services.delivery.service import sender
from tests.conftest import facility_body
from tests.delivery.conftest import HUANGPU_TOWN, City, auth
from tests.delivery.test_readme import verify_example
from tests.support import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

FACILITY_EVENTS = ["cradle.registry.facility.*"]


async def test_a_bureau_receives_each_event_signed_with_its_secret(city: City) -> None:
    bureau = await city.bureau()
    url = city.receiver.endpoint()
    subscription = await city.subscribe(bureau, url, FACILITY_EVENTS)
    assert subscription["secret"].startswith("whsec_")
    facility = await city.facility(await city.operator())

    received = await eventually(lambda: city.receiver.at(url))
    # As the README tells a receiver to check it.
    event = verify_example().verified_event(subscription["secret"], received[0].body, received[0].headers)
    assert event["type"] == "cradle.registry.facility.submitted"
    assert event["data"]["facility_id"] == facility["id"]
    assert received[0].headers["webhook-id"] == event["id"]
    tampered = received[0].body.replace(facility["id"].encode(), b"00000000-0000-0000-0000-000000000000")
    with pytest.raises(verify_example().WebhookVerificationError):
        verify_example().verified_event(subscription["secret"], tampered, received[0].headers)
    assert received[0].headers["content-type"] == "application/cloudevents+json"
    # The secret is shown once: never again in a read.
    again = await city.client.get(f"/v1/subscriptions/{subscription['id']}", headers=auth(bureau))
    assert again.status_code == 200 and "secret" not in again.json()


async def test_a_district_never_receives_another_districts_event(city: City) -> None:
    xuhui = await city.district("310104")
    url = city.receiver.endpoint()
    await city.subscribe(xuhui, url, FACILITY_EVENTS)
    operator = await city.operator()
    elsewhere = await city.facility(operator, town_code=HUANGPU_TOWN)
    own = await city.facility(operator)

    events = await eventually(lambda: city.receiver.events_at(url))
    # Both were committed; the Xuhui one arrived, so the Huangpu one had its chance too.
    await eventually(lambda: city.recorded_all([elsewhere["id"], own["id"]]))
    ids = {e["data"]["facility_id"] for e in city.receiver.events_at(url)}
    assert own["id"] in ids and elsewhere["id"] not in ids
    assert all(e["data"]["district_code"] == "310104" for e in events)


async def test_an_operator_receives_only_its_own_facilities(city: City) -> None:
    mine, theirs = await city.operator(), await city.operator()
    url = city.receiver.endpoint()
    await city.subscribe(mine, url, ["cradle.registry.**"])
    other = await city.facility(theirs)
    own = await city.facility(mine)

    await eventually(lambda: city.receiver.events_at(url))
    await eventually(lambda: city.recorded_all([other["id"], own["id"]]))
    seen = {e["data"]["facility_id"] for e in city.receiver.events_at(url)}
    assert seen == {own["id"]}


async def test_a_receiver_that_fails_then_recovers_gets_every_event_in_order(city: City) -> None:
    bureau = await city.bureau()
    url = city.receiver.endpoint("flaky", failures=3)
    subscription = await city.subscribe(bureau, url, FACILITY_EVENTS)
    operator = await city.operator()
    facility = await city.facility(operator)
    changed = await city.client.patch(
        f"/v1/facilities/{facility['id']}", json={"address": "天平路 200 号"}, headers=auth(operator)
    )
    assert changed.status_code == 200, changed.text

    events = await eventually(lambda: len(city.receiver.events_at(url)) >= 2 and city.receiver.events_at(url))
    assert [e["type"] for e in events] == [
        "cradle.registry.facility.submitted",
        "cradle.registry.facility.updated",
    ]
    signatures = {r.headers["webhook-signature"] for r in city.receiver.at(url)}
    assert len(signatures) == 2

    page = await city.client.get(f"/v1/subscriptions/{subscription['id']}/deliveries", headers=auth(bureau))
    assert page.status_code == 200, page.text
    attempts = page.json()["items"]
    failed = [a for a in attempts if a["outcome"] == "failed"]
    assert len(failed) == 3
    assert all(a["status_code"] == 503 and len(a["response_excerpt"].encode()) <= 1024 for a in failed)
    assert [a["outcome"] for a in attempts if a["event_id"] == events[0]["id"]][0] == "delivered"
    assert all(a["latency_ms"] >= 0 for a in attempts)


async def test_a_reply_with_a_nul_byte_is_recorded_and_the_sender_goes_on(city: City) -> None:
    bureau = await city.bureau()
    url = city.receiver.endpoint("binary")
    subscription = await city.subscribe(bureau, url, FACILITY_EVENTS)
    await city.facility(await city.operator())

    async def recorded() -> list[dict[str, object]]:
        page = await city.client.get(
            f"/v1/subscriptions/{subscription['id']}/deliveries", headers=auth(bureau)
        )
        assert page.status_code == 200, page.text
        return page.json()["items"]

    attempts = await eventually(recorded)
    # PostgreSQL's text holds no NUL: stored as the replacement character, as the undecodable byte is.
    assert [(a["outcome"], a["response_excerpt"]) for a in attempts] == [("delivered", "ok\ufffd\ufffd")]


async def test_a_receiver_that_never_answers_holds_back_no_one(city: City) -> None:
    bureau = await city.bureau()
    silent = city.receiver.endpoint("silent")
    healthy = city.receiver.endpoint()
    stuck = await city.subscribe(bureau, silent, FACILITY_EVENTS)
    await city.subscribe(bureau, healthy, FACILITY_EVENTS)
    operator = await city.operator()
    facilities = [await city.facility(operator) for _ in range(6)]

    await eventually(lambda: len(city.receiver.at(healthy)) == len(facilities))

    async def timed_out() -> list[dict]:
        page = await city.client.get(f"/v1/subscriptions/{stuck['id']}/deliveries", headers=auth(bureau))
        return [a for a in page.json()["items"] if a["error"] and "no answer" in a["error"]]

    attempts = await eventually(timed_out)
    assert all(a["status_code"] is None for a in attempts)


async def test_a_rotated_secret_and_the_old_one_both_sign_during_the_grace_period(city: City) -> None:
    bureau = await city.bureau()
    url = city.receiver.endpoint()
    first = await city.subscribe(bureau, url, FACILITY_EVENTS)
    rotated = await city.client.post(f"/v1/subscriptions/{first['id']}/rotate-secret", headers=auth(bureau))
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["secret"]
    assert second != first["secret"] and rotated.json()["previous_secret_until"]
    await city.facility(await city.operator())

    received = (await eventually(lambda: city.receiver.at(url)))[0]
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    Webhook(second).verify(received.body, received.headers)
    Webhook(first["secret"]).verify(received.body, received.headers)


async def test_a_subscription_failing_for_three_days_is_disabled_and_its_owner_told(
    city: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sender's lines through production's context step into a capture (loggers are cached per
    # process at first use).
    capture = LogCapture()
    monkeypatch.setattr(
        sender,
        "log",
        structlog.wrap_logger(
            None,
            processors=[merge_contextvars, capture],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        ),
    )
    bureau = await city.bureau()
    dead = city.receiver.endpoint("flaky", failures=1_000_000)
    watcher = city.receiver.endpoint()
    doomed = await city.subscribe(bureau, dead, FACILITY_EVENTS)
    await city.subscribe(bureau, watcher, ["cradle.delivery.*.*"])
    request_id = f"disable-{uuid.uuid4().hex[:12]}"
    created = await city.client.post(
        "/v1/facilities",
        json=facility_body(name=f"托育点-{uuid.uuid4().hex[:6]}"),
        headers={**auth(await city.operator()), "X-Request-Id": request_id},
    )
    assert created.status_code == 201, created.text

    async def failing_since() -> datetime | None:
        async with city.delivery.state.sessionmaker() as session:
            return (await session.get(Subscription, doomed["id"])).failing_since

    await eventually(failing_since)
    # Three days of failures, as far as the subscription knows; the next failure is the last.
    async with city.delivery.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(Subscription)
            .where(Subscription.id == doomed["id"])
            .values(failing_since=datetime.now(UTC) - timedelta(days=3, minutes=1))
        )

    told = await eventually(lambda: city.receiver.events_at(watcher))
    assert told[0]["type"] == "cradle.delivery.subscription.disabled"
    assert told[0]["data"]["subscription_id"] == doomed["id"]
    # Disabled on the event whose delivery failed last: its line and its event name that request.
    assert told[0]["requestid"] == request_id
    [line] = [entry for entry in capture.entries if entry["event"] == "subscription_disabled"]
    assert line["request_id"] == request_id and line["trace_id"], line
    read = await city.client.get(f"/v1/subscriptions/{doomed['id']}", headers=auth(bureau))
    assert read.json()["enabled"] is False and "failed" in read.json()["disabled_reason"]
    feed = await city.client.get("/v1/events", params={"types": "cradle.delivery.**"}, headers=auth(bureau))
    assert doomed["id"] in {e["data"]["subscription_id"] for e in feed.json()["items"]}
    # Another client never hears of it.
    other = await city.client.get(
        "/v1/events", params={"types": "cradle.delivery.**"}, headers=auth(await city.bureau())
    )
    assert other.json()["items"] == []


async def test_replay_sends_again_what_happened_since(city: City) -> None:
    bureau = await city.bureau()
    since = datetime.now(UTC)
    url = city.receiver.endpoint()
    subscription = await city.subscribe(bureau, url, FACILITY_EVENTS)
    facility = await city.facility(await city.operator())
    await eventually(lambda: city.receiver.at(url))

    replayed = await city.client.post(
        f"/v1/subscriptions/{subscription['id']}/replay",
        params={"since": since.isoformat()},
        headers=auth(bureau),
    )
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["replayed"] >= 1
    events = await eventually(lambda: len(city.receiver.at(url)) >= 2 and city.receiver.events_at(url))
    assert [e["data"]["facility_id"] for e in events].count(facility["id"]) >= 2
