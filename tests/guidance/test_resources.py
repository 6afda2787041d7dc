"""Resources: publishing pushes to the families in need with a child in the age range (精准推送,
recorded per family), each family's feed by its children's ages, relevance, and bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from services.guidance.models import Resource, ResourcePush
from services.guidance.service.resources import pushed_events
from shared.contracts.guidance import PUSHED_FAMILIES_PER_EVENT, ResourcePushed
from tests.guidance.conftest import Guide, months_ago

pytestmark = pytest.mark.asyncio(loop_scope="module")


def child(months: int) -> dict[str, str]:
    return {"birth_date": months_ago(months).isoformat()}


async def publish(guide: Guide, **body: object) -> dict[str, object]:
    values = {
        "kind": "article",
        "title": "辅食添加指南",
        "age_from_months": 6,
        "age_to_months": 12,
        "topics": ["nutrition"],
    }
    values.update(body)
    response = await guide.direct.post("/v1/resources", json=values, headers=guide.bureau())
    assert response.status_code == 201, response.text
    return response.json()


async def test_publishing_pushes_to_families_in_need_with_a_child_in_the_range(guide: Guide) -> None:
    in_range = [await guide.family(children=[child(50)], in_need=True) for _ in range(3)]
    older_too = await guide.family(children=[child(20), child(51)], in_need=True, grandparent_carers=False)
    not_in_need = await guide.family(children=[child(50)], in_need=False)
    too_young = await guide.family(children=[child(48)], in_need=True)
    resource = await publish(
        guide, title="幼小衔接：入园准备", age_from_months=49, age_to_months=51, topics=["school_readiness"]
    )
    assert resource["pushed_families"] == 4
    async with guide.app.state.sessionmaker() as db:
        pushed = set(
            (
                await db.execute(
                    select(ResourcePush.family_id).where(ResourcePush.resource_id == resource["id"])
                )
            ).scalars()
        )
    assert pushed == {f["id"] for f in in_range} | {older_too["id"]}
    assert not_in_need["id"] not in pushed and too_young["id"] not in pushed

    grandparents = await publish(
        guide, title="隔代养育：祖辈如何带娃", age_from_months=49, age_to_months=51, audience="grandparents"
    )
    # Only the families where grandparents care (the default when a grandparent is a guardian).
    assert grandparents["pushed_families"] == 3
    facilities = await publish(
        guide, title="托育机构膳食规范", age_from_months=49, age_to_months=51, audience="facilities"
    )
    assert facilities["pushed_families"] == 0

    published = {e.subject: e.data for e in await guide.events("cradle.guidance.resource.published")}
    assert published[resource["id"]]["pushed_families"] == 4
    assert published[resource["id"]]["title"] == "幼小衔接：入园准备"
    assert published[resource["id"]]["topics"] == ["school_readiness"]
    # The families' parents are told, by family id: every family pushed to, once.
    [told] = [
        e.data for e in await guide.events("cradle.guidance.resource.pushed") if e.subject == resource["id"]
    ]
    assert sorted(told["family_ids"]) == sorted(pushed) and told["families"] == 4
    assert told["title"] == "幼小衔接：入园准备" and told["kind"] == "article"
    told_facilities = await guide.events("cradle.guidance.resource.pushed")
    assert facilities["id"] not in {e.subject for e in told_facilities}  # pushed to no family: no event


async def test_a_push_to_more_families_than_one_event_holds_is_told_in_several() -> None:
    resource = Resource(id=str(uuid.uuid4()), title="科学育儿100问", kind="article")
    families = sorted(str(uuid.uuid4()) for _ in range(2 * PUSHED_FAMILIES_PER_EVENT + 500))
    now = datetime.now(UTC)
    events = pushed_events(resource, families, now)
    assert [e.families for e in events] == [PUSHED_FAMILIES_PER_EVENT, PUSHED_FAMILIES_PER_EVENT, 500]
    assert [f for e in events for f in e.family_ids] == families
    for event in events:  # each within its contract, as the outbox will check it
        ResourcePushed.model_validate(event.model_dump(mode="json"))
        assert event.subject_id() == resource.id and event.pushed_at == now
    assert pushed_events(resource, [], now) == []
    with pytest.raises(ValidationError):
        ResourcePushed(**{**events[0].model_dump(), "family_ids": families[: PUSHED_FAMILIES_PER_EVENT + 1]})


async def test_the_feed_fits_the_childrens_ages_most_relevant_then_newest(guide: Guide) -> None:
    parent, family = await guide.parent_with_family(
        children=[child(3), child(30)],
        guardians=[{"relation": "grandmother", "name": "张桂兰"}],
        newborn=True,
        in_need=True,
    )
    infant = await publish(
        guide, title="0-6月龄母乳喂养", age_from_months=0, age_to_months=6, topics=["breastfeeding"]
    )
    general = await publish(
        guide, kind="video", title="婴幼儿安全", age_from_months=0, age_to_months=72, topics=["safety"]
    )
    grand = await publish(
        guide,
        kind="course",
        title="祖辈课堂：两岁半的语言发展",
        age_from_months=24,
        age_to_months=35,
        audience="grandparents",
        topics=["grandparenting", "language"],
    )
    await publish(guide, title="不适合的年龄", age_from_months=40, age_to_months=45)
    await publish(guide, title="机构用", age_from_months=0, age_to_months=72, audience="facilities")

    page = await guide.direct.get(f"/v1/families/{family['id']}/feed", headers=parent)
    assert page.status_code == 200
    items = page.json()["items"]
    # grand: 1 child + narrow span + grandparents' resource + focus topic = 4;
    # infant: 1 child + narrow span + focus topic (newborn → breastfeeding) = 3; general: 2 children = 2.
    assert [(i["id"], i["relevance"]) for i in items] == [
        (grand["id"], 4),
        (infant["id"], 3),
        (general["id"], 2),
    ]
    assert items[2]["for_child_ids"] == sorted(c["id"] for c in family["children"])

    seen, cursor = [], None
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        feed_page = (
            await guide.direct.get(f"/v1/families/{family['id']}/feed", params=params, headers=parent)
        ).json()
        seen += [i["id"] for i in feed_page["items"]]
        if not (cursor := feed_page["next_cursor"]):
            break
    assert seen == [i["id"] for i in items]
    other_parent = guide.parent()
    assert (
        await guide.direct.get(f"/v1/families/{family['id']}/feed", headers=other_parent)
    ).status_code == 404


async def test_a_resource_with_an_inverted_age_range_or_bad_fields_is_refused(guide: Guide) -> None:
    response = await guide.direct.post(
        "/v1/resources",
        json={
            "kind": "podcast",
            "title": "x",
            "age_from_months": 24,
            "age_to_months": 12,
            "topics": ["Bad Topic"],
            "url": "ftp://x",
            "audience": "everyone",
        },
        headers=guide.bureau(),
    )
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {
        "kind",
        "age_to_months",
        "topics.0",
        "url",
        "audience",
    }
    too_old = await guide.direct.post(
        "/v1/resources",
        json={"kind": "article", "title": "x", "age_from_months": -1, "age_to_months": 200},
        headers=guide.bureau(),
    )
    assert {e["field"] for e in too_old.json()["errors"]} == {"age_from_months", "age_to_months"}
    assert (await guide.direct.post("/v1/resources", json={}, headers=guide.parent())).status_code == 403


async def test_resources_are_listed_newest_first_and_read_with_an_etag(guide: Guide) -> None:
    first = await publish(guide, title="睡眠指导", age_from_months=60, age_to_months=70, topics=["sleep"])
    second = await publish(
        guide, title="睡眠指导（二）", age_from_months=60, age_to_months=70, topics=["sleep"]
    )
    listed = await guide.direct.get(
        "/v1/resources", params={"topic": "sleep", "age_months": 65}, headers=guide.parent()
    )
    assert [r["id"] for r in listed.json()["items"]][:2] == [second["id"], first["id"]]
    read = await guide.direct.get(f"/v1/resources/{first['id']}", headers=guide.parent())
    assert read.json()["title"] == "睡眠指导" and read.headers["etag"] == '"1"'
