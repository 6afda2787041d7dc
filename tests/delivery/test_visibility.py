"""Each subscriber gets exactly what it may read through the API: a district its district's events,
an operator its own facilities', a bureau what its scopes allow; an event about several facilities
is cut down per subscriber; another client's subscription does not exist for it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from services.delivery.models import Subscription
from services.delivery.service.audience import facility_ids_in
from shared.contracts.monitoring import ComplaintLodged
from shared.contracts.workforce import BanIssued, BannedAt
from tests.delivery.conftest import HUANGPU_TOWN, City, auth
from tests.support import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

BAN_EVENTS = ["cradle.workforce.ban.*"]


async def test_a_ban_at_two_facilities_is_cut_down_to_what_each_subscriber_may_see(city: City) -> None:
    mine, theirs, stranger = await city.operator(), await city.operator(), await city.operator()
    own = await city.facility(mine)  # Xuhui
    other = await city.facility(theirs, town_code=HUANGPU_TOWN)
    await eventually(lambda: city.recorded_all([own["id"], other["id"]]))
    urls = {name: city.receiver.endpoint() for name in ("mine", "stranger", "xuhui", "huangpu", "bureau")}
    await city.subscribe(mine, urls["mine"], BAN_EVENTS)
    await city.subscribe(stranger, urls["stranger"], BAN_EVENTS)
    await city.subscribe(await city.district("310104"), urls["xuhui"], BAN_EVENTS)
    await city.subscribe(await city.district("310101"), urls["huangpu"], BAN_EVENTS)
    await city.subscribe(await city.bureau(), urls["bureau"], BAN_EVENTS)

    ban = await city.publish(
        "workforce",
        BanIssued(
            ban_id=str(uuid.uuid4()),
            role="abuser",
            decision_ref="沪教委决〔2026〕12号",
            issued_at=datetime.now(UTC),
            practitioner_id=str(uuid.uuid4()),
            facilities=[
                BannedAt(facility_id=own["id"], district_code="310104", employment_id=str(uuid.uuid4())),
                BannedAt(facility_id=other["id"], district_code="310101", employment_id=str(uuid.uuid4())),
            ],
        ),
    )

    def got(name: str) -> list[dict]:
        return [e for e in city.receiver.events_at(urls[name]) if e["id"] == ban.id]

    bureau = (await eventually(lambda: got("bureau")))[0]
    assert facility_ids_in(bureau) == {own["id"], other["id"]}
    assert facility_ids_in((await eventually(lambda: got("mine")))[0]) == {own["id"]}
    assert facility_ids_in((await eventually(lambda: got("xuhui")))[0]) == {own["id"]}
    assert facility_ids_in((await eventually(lambda: got("huangpu")))[0]) == {other["id"]}
    # Every subscriber's delivery was decided in the one transaction that stored the event.
    assert got("stranger") == []

    # The feed says the same.
    feed = await city.client.get(
        "/v1/events", params={"types": "cradle.workforce.ban.issued"}, headers=auth(mine)
    )
    [seen] = [e for e in feed.json()["items"] if e["id"] == ban.id]
    assert facility_ids_in(seen) == {own["id"]}
    feed = await city.client.get(
        "/v1/events", params={"types": "cradle.workforce.**"}, headers=auth(stranger)
    )
    assert ban.id not in {e["id"] for e in feed.json()["items"]}


async def test_a_bureau_without_a_services_read_scope_gets_none_of_its_events(city: City) -> None:
    bureau = await city.bureau(
        department="HEALTH", scopes=["registry:read", "events:read", "events:subscribe"]
    )
    url = city.receiver.endpoint()
    await city.subscribe(bureau, url, ["cradle.**"])
    facility = await city.facility(await city.operator())
    await eventually(lambda: city.receiver.events_at(url))
    await eventually(lambda: city.recorded_all([facility["id"]]))
    assert {e["type"].split(".")[1] for e in city.receiver.events_at(url)} == {"registry"}
    feed = await city.client.get("/v1/events", params={"limit": 500}, headers=auth(bureau))
    assert {e["type"].split(".")[1] for e in feed.json()["items"]} <= {"registry"}


async def test_another_clients_subscription_does_not_exist_for_you(city: City) -> None:
    owner, other = await city.bureau(), await city.bureau()
    subscription = await city.subscribe(owner, city.receiver.endpoint(), ["cradle.registry.**"])
    path = f"/v1/subscriptions/{subscription['id']}"
    for method, suffix, kwargs in (
        ("GET", "", {}),
        ("PATCH", "", {"json": {"description": "mine now"}}),
        ("DELETE", "", {}),
        ("GET", "/deliveries", {}),
        ("POST", "/rotate-secret", {}),
        ("POST", "/replay", {"params": {"since": "2026-01-01T00:00:00+08:00"}}),
    ):
        response = await city.client.request(method, path + suffix, headers=auth(other), **kwargs)
        assert response.status_code == 404, (method, suffix, response.text)
    listed = await city.client.get("/v1/subscriptions", headers=auth(other))
    assert listed.json()["items"] == []
    assert (await city.client.get(path, headers=auth(owner))).status_code == 200


async def test_urls_that_are_not_public_https_are_refused(city: City) -> None:
    bureau = await city.bureau()
    for url in (
        "http://example.com/hook",
        "ftp://example.com/hook",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://192.168.1.20:8443/hook",
        "https://user:pass@example.com/hook",
    ):
        response = await city.client.post(
            "/v1/subscriptions", json={"url": url, "event_types": ["cradle.**"]}, headers=auth(bureau)
        )
        assert response.status_code == 422, (url, response.text)
        assert [e["field"] for e in response.json()["errors"]] == ["url"], url
    bad = await city.client.post(
        "/v1/subscriptions",
        json={"url": "https://example.com", "event_types": ["bans"]},
        headers=auth(bureau),
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"].startswith("event_types")


async def test_an_address_that_turned_private_after_subscribing_is_never_connected_to(city: City) -> None:
    """DNS rebinding: the address is checked again on every attempt, after resolving the name."""
    bureau = await city.bureau()
    subscription = await city.subscribe(bureau, city.receiver.endpoint(), ["cradle.registry.**"])
    async with city.delivery.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(Subscription)
            .where(Subscription.id == subscription["id"])
            .values(url="https://10.20.30.40/hook")
        )
    await city.facility(await city.operator())

    async def refused() -> list[dict]:
        page = await city.client.get(
            f"/v1/subscriptions/{subscription['id']}/deliveries", headers=auth(bureau)
        )
        return [a for a in page.json()["items"] if (a["error"] or "").startswith("refused")]

    attempt = (await eventually(refused))[0]
    assert attempt["status_code"] is None and "10.20.30.40" in attempt["error"]


async def test_only_bureaus_districts_and_operators_read_events(city: City) -> None:
    admin = await city.stack.admin()
    assert (await city.client.get("/v1/events", headers=admin)).status_code == 403
    app_client = await city.caller(kind="app", scopes=["events:read", "events:subscribe"])
    assert (await city.client.get("/v1/events", headers=auth(app_client))).status_code == 403
    no_scope = await city.caller(kind="bureau", bureau="EDU", scopes=["registry:read"])
    assert (await city.client.get("/v1/events", headers=auth(no_scope))).status_code == 403
    feed_only = await city.caller(kind="bureau", bureau="EDU", scopes=["registry:read", "events:read"])
    refused = await city.client.post(
        "/v1/subscriptions",
        json={"url": "https://example.com/h", "event_types": ["cradle.**"]},
        headers=auth(feed_only),
    )
    assert refused.status_code == 403


async def test_a_complaint_s_events_reach_its_district_and_the_operator_never_another(city: City) -> None:
    # Operators that read monitoring (complaints about their own facilities, through the API too).
    readers = ["registry:read", "registry:write", "monitoring:read", "events:read", "events:subscribe"]
    mine, stranger = [await city.caller(kind="operator", scopes=readers) for _ in range(2)]
    own = await city.facility(mine)  # Xuhui
    await eventually(lambda: city.recorded_all([own["id"]]))
    urls = {name: city.receiver.endpoint() for name in ("mine", "stranger", "xuhui", "huangpu")}
    complaints = ["cradle.monitoring.complaint.*"]
    await city.subscribe(mine, urls["mine"], complaints)
    await city.subscribe(stranger, urls["stranger"], complaints)
    await city.subscribe(await city.district("310104"), urls["xuhui"], complaints)
    await city.subscribe(await city.district("310101"), urls["huangpu"], complaints)
    now = datetime.now(UTC)
    lodged = await city.publish(
        "monitoring",
        ComplaintLodged(
            complaint_id=str(uuid.uuid4()),
            facility_id=own["id"],
            district_code="310104",
            category="food",
            lodged_at=now,
            acknowledge_due_at=now,
            answer_due_at=now,
        ),
    )

    def got(name: str) -> list[dict]:
        return [e for e in city.receiver.events_at(urls[name]) if e["id"] == lodged.id]

    [seen] = await eventually(lambda: got("xuhui"))
    # What the district receives names the complaint, never a complainant.
    assert set(seen["data"]) == {
        "complaint_id",
        "facility_id",
        "district_code",
        "category",
        "lodged_at",
        "acknowledge_due_at",
        "answer_due_at",
    }
    await eventually(lambda: got("mine"))
    assert got("huangpu") == [] and got("stranger") == []
