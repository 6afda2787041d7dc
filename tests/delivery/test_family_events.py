"""A resource pushed to families reaches each family's parents on the feed and the stream, cut down
to their own family; the bureaus read how many families, never which; districts, operators, a
parent of another family and a parent who only claims a family in its token read nothing of it."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from tests.delivery.conftest import EVENT_SCOPES, READS, XUHUI_TOWN, City, auth
from tests.delivery.test_feed import over_sockets, read_stream
from tests.support import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

PUSHED = "cradle.guidance.resource.pushed"
AGE_MONTHS = 37  # a child this old, and a resource for exactly this age


def born_months_ago(months: int) -> date:
    today = datetime.now(UTC).date()
    index = today.year * 12 + today.month - 1 - months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(today.day, 28)) - timedelta(days=3)


async def parent(city: City, claimed_family_id: str | None = None) -> dict[str, str]:
    body: dict[str, Any] = {"phone": f"139{random.randrange(10**8):08d}", "password": "育儿加油站2026"}
    if claimed_family_id:
        body["family_id"] = claimed_family_id
    registered = await city.client.post("/v1/auth/parents/register", json=body)
    assert registered.status_code == 201, registered.text
    return {"Authorization": f"Bearer {registered.json()['access_token']}"}


async def family_of(city: City, headers: dict[str, str]) -> str:
    """A family in need registered from the app by this parent (so linked to it)."""
    created = await city.client.post(
        "/v1/families",
        json={
            "town_code": XUHUI_TOWN,
            "guardians": [{"relation": "mother", "name": "林芳"}],
            "children": [{"birth_date": born_months_ago(AGE_MONTHS).isoformat()}],
            "in_need": True,
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def publish(city: City) -> str:
    bureau = await city.caller(kind="bureau", bureau="WCWC", scopes=["guidance:read", "guidance:write"])
    published = await city.client.post(
        "/v1/resources",
        json={
            "kind": "article",
            "title": f"三岁幼儿入园准备-{uuid.uuid4().hex[:6]}",
            "age_from_months": AGE_MONTHS,
            "age_to_months": AGE_MONTHS,
            "topics": ["school_readiness"],
        },
        headers=auth(bureau),
    )
    assert published.status_code == 201, published.text
    return str(published.json()["id"])


async def pushed_on_feed(city: City, headers: dict[str, str], resource_id: str) -> list[dict[str, Any]]:
    response = await city.client.get(
        "/v1/events", params={"types": "cradle.guidance.**", "limit": 200}, headers=headers
    )
    assert response.status_code == 200, response.text
    return [e for e in response.json()["items"] if e["type"] == PUSHED and e["subject"] == resource_id]


async def test_a_pushed_resource_reaches_each_familys_parents_cut_down_to_their_own_family(
    city: City,
) -> None:
    parent_a, parent_b = await parent(city), await parent(city)
    family_a, family_b = await family_of(city, parent_a), await family_of(city, parent_b)
    claiming = await parent(city, claimed_family_id=family_a)  # a hint in its token, no link
    district = await city.district("310104")  # the families' own district
    operator = await city.operator()
    bureau = await city.bureau(department="WCWC")
    resource_id = await publish(city)

    [seen_by_a] = await eventually(lambda: pushed_on_feed(city, parent_a, resource_id))
    assert seen_by_a["data"]["family_ids"] == [family_a]
    assert seen_by_a["data"]["resource_id"] == resource_id and seen_by_a["data"]["kind"] == "article"
    [seen_by_b] = await eventually(lambda: pushed_on_feed(city, parent_b, resource_id))
    assert seen_by_b["data"]["family_ids"] == [family_b]
    # Both families are named by the one event (a thousand fit in one): each parent sees its own.
    assert seen_by_a["id"] == seen_by_b["id"] and seen_by_a["data"]["families"] >= 2
    whole_feed_b = await city.client.get("/v1/events", params={"limit": 200}, headers=parent_b)
    assert family_a not in whole_feed_b.text
    assert {e["type"] for e in whole_feed_b.json()["items"]} == {PUSHED}  # nothing but its pushes

    # The bureaus: how many families, not which (the ids are guidance's personal data).
    [seen_by_bureau] = await eventually(lambda: pushed_on_feed(city, auth(bureau), resource_id))
    assert seen_by_bureau["data"]["family_ids"] == [] and seen_by_bureau["data"]["families"] >= 2
    # Districts and operators nothing; nor a parent whose token only claims the family.
    assert await pushed_on_feed(city, auth(district), resource_id) == []
    assert await pushed_on_feed(city, auth(operator), resource_id) == []
    claimed = await city.client.get("/v1/events", params={"limit": 200}, headers=claiming)
    assert claimed.status_code == 200 and claimed.json()["items"] == []
    # The district does see that the resource was published (a city resource every district reads).
    published = await city.client.get(
        "/v1/events",
        params={"types": "cradle.guidance.resource.published", "limit": 200},
        headers=auth(district),
    )
    assert resource_id in {e["subject"] for e in published.json()["items"]}

    # The stream says the same to the parent.
    async with over_sockets(city) as client:
        streamed, _ = await read_stream(client, parent_a, events=1, params={"types": PUSHED})
    [(_, body)] = streamed
    assert json.loads(body)["data"]["family_ids"] == [family_a]


async def test_a_parent_reads_the_feed_but_cannot_subscribe_and_a_bureau_webhook_gets_no_family_ids(
    city: City,
) -> None:
    own = await parent(city)
    family = await family_of(city, own)
    refused = await city.client.post(
        "/v1/subscriptions", json={"url": city.receiver.endpoint(), "event_types": [PUSHED]}, headers=own
    )
    assert refused.status_code == 403, refused.text
    bureau = await city.caller(kind="bureau", bureau="WCWC", scopes=[*READS, *EVENT_SCOPES])
    url = city.receiver.endpoint()
    await city.subscribe(bureau, url, [PUSHED])
    resource_id = await publish(city)

    [mine] = await eventually(lambda: pushed_on_feed(city, own, resource_id))
    assert mine["data"]["family_ids"] == [family]
    sent = await eventually(lambda: [e for e in city.receiver.events_at(url) if e["subject"] == resource_id])
    assert [e["data"]["family_ids"] for e in sent] == [[]] and sent[0]["data"]["families"] >= 1
    assert family not in json.dumps(sent)
