"""The in-memory directory searches answer from: current after writes on this replica, on another
replica, and straight to the database; and page for page the same answer as the search in SQL."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.exc import OperationalError

from services.registry.app import create_app
from services.registry.models import Facility, Town
from services.registry.schemas import AgeClass, FacilityKind, FacilityStatus, ServiceMode
from services.registry.service import search
from services.registry.service.search import FacilityFilters, Near
from shared.identity import IDENTITY_HEADER, PUBLIC_IDENTITY, ClientKind, Identity, IdentitySigner
from shared.pagination import PageParams, decode_cursor
from tests.conftest import facility_body
from tests.registry.conftest import Registry
from tests.support import eventually, running


async def public_items(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await client.get("/v1/public/facilities", params={"limit": 500}, headers=headers or {})
    assert response.status_code == 200, response.text
    return {f["id"]: f for f in response.json()["items"]}


async def test_a_replica_reads_its_own_writes_at_once(registry: Registry) -> None:
    facility = await registry.approved()
    assert facility["id"] in await public_items(registry.client)
    await registry.client.put(
        f"/v1/facilities/{facility['id']}/enrolment",
        json={"month": "2026-11", "infant": 4, "toddler": 15, "preschool": 0},
        headers=registry["operator"],
    )
    listed = (await public_items(registry.client))[facility["id"]]
    assert listed["free_places"] == {"infant": 6, "toddler": 0, "preschool": 20}
    response = await registry.client.post(
        f"/v1/facilities/{facility['id']}/status",
        json={"status": "suspended", "reason": "消防检查未通过"},
        headers=registry["EDU"],
    )
    assert response.status_code == 200, response.text
    assert facility["id"] not in await public_items(registry.client)


async def test_another_replica_converges_on_the_writes(registry: Registry, keys: dict[str, Any]) -> None:
    settings = registry.stack.registry.state.settings.model_copy(update={"directory_poll_seconds": 0.2})
    headers = {IDENTITY_HEADER: IdentitySigner(keys["signing"]).sign(PUBLIC_IDENTITY)}
    async with (
        running(create_app(settings)) as second,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://registry-2") as client,
    ):
        assert await public_items(client, headers) == {}
        facility = await registry.approved(name="第二副本可见")
        listed = await eventually(lambda: public_items(client, headers))
        assert listed[facility["id"]]["name"] == "第二副本可见"

        await registry.client.put(
            f"/v1/facilities/{facility['id']}/enrolment",
            json={"month": "2026-11", "infant": 10, "toddler": 1, "preschool": 0},
            headers=registry["operator"],
        )

        async def enrolment_seen() -> bool:
            return (await public_items(client, headers))[facility["id"]]["free_places"]["infant"] == 0

        await eventually(enrolment_seen)
        await registry.client.post(
            f"/v1/facilities/{facility['id']}/status",
            json={"status": "suspended", "reason": "消防检查未通过"},
            headers=registry["EDU"],
        )

        async def gone() -> bool:
            return facility["id"] not in await public_items(client, headers)

        await eventually(gone)


async def test_an_authenticated_caller_reads_its_writes_on_another_replica_at_once(
    registry: Registry, keys: dict[str, Any]
) -> None:
    # A second replica that would not poll within the test: what it answers, it read for the request.
    settings = registry.stack.registry.state.settings.model_copy(update={"directory_poll_seconds": 3600})
    edu = Identity(client_id="edu-reader", kind=ClientKind.bureau, bureau="EDU", scopes=["registry:read"])
    headers = {IDENTITY_HEADER: IdentitySigner(keys["signing"]).sign(edu)}
    async with (
        running(create_app(settings)) as second,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://registry-2") as client,
    ):

        async def every_id() -> set[str]:
            ids: set[str] = set()
            cursor = None
            while True:
                params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
                listed = await client.get("/v1/facilities", params=params, headers=headers)
                assert listed.status_code == 200, listed.text
                ids |= {item["id"] for item in listed.json()["items"]}
                if not (cursor := listed.json()["next_cursor"]):
                    return ids

        for attempt in range(5):
            created = await registry.client.post(
                "/v1/facilities", json=facility_body(name=f"副本{attempt}"), headers=registry["operator"]
            )
            assert created.status_code == 201, created.text
            assert created.json()["id"] in await every_id(), attempt


async def test_a_change_written_straight_to_the_database_is_seen(registry: Registry) -> None:
    facility = await registry.approved(name="旧名")
    assert (await public_items(registry.client))[facility["id"]]["name"] == "旧名"
    async with registry.stack.registry.state.engine.begin() as connection:
        await connection.execute(update(Facility).where(Facility.id == facility["id"]).values(name="新名"))

    async def renamed() -> bool:
        return (await public_items(registry.client))[facility["id"]]["name"] == "新名"

    await eventually(renamed)


# ------------------------------------------------------------------------------ same as the SQL search

CENTRE = (31.2304, 121.4737)


async def write_facilities(registry: Registry, count: int, owner: str) -> None:
    """Facilities with every attribute the filters read drawn at random, some stacked on one point
    (ties in distance), written in one statement as a seeder would."""
    rng = random.Random(15)
    async with registry.stack.registry.state.engine.begin() as connection:
        towns = (await connection.execute(select(Town.code, Town.district_code))).all()
        now = datetime(2026, 11, 1, tzinfo=UTC)
        rows = []
        for i in range(count):
            town = rng.choice(towns[:40])
            status = rng.choice(["approved"] * 4 + ["submitted", "suspended"])
            point = (
                CENTRE if i % 10 == 0 else (CENTRE[0] + rng.gauss(0, 0.02), CENTRE[1] + rng.gauss(0, 0.02))
            )
            capacity = {a: rng.randint(0, 20) for a in ("infant", "toddler", "preschool")}
            rows.append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "name": f"测试{i}",
                    "kind": rng.choice([k.value for k in FacilityKind]),
                    "inclusive": rng.random() < 0.5,
                    "has_nursery_class": False,
                    "town_code": town.code,
                    "district_code": town.district_code,
                    "address": "测试路 1 号",
                    "lat": point[0],
                    "lon": point[1],
                    "operator_name": "测试",
                    "service_modes": rng.sample([m.value for m in ServiceMode], rng.randint(1, 2)),
                    "opening_hours": [],
                    **{f"capacity_{a}": n for a, n in capacity.items()},
                    **{f"enrolled_{a}": rng.randint(0, n + 2) for a, n in capacity.items()},
                    "status": status,
                    "license_no": f"沪托test-{i}" if status != "submitted" else None,
                    "owner_client_id": owner if i % 3 == 0 else "someone-else",
                    "submitted_at": now,
                    "approved_at": now + timedelta(days=1) if status != "submitted" else None,
                    "updated_at": now,
                }
            )
        await connection.execute(insert(Facility), rows)


async def pages_from_sql(
    registry: Registry, caller: Identity | None, filters: FacilityFilters, limit: int
) -> list[tuple[list[tuple[str, float | None]], str | None]]:
    if caller is None and filters.status not in (FacilityStatus.suspended, FacilityStatus.closed):
        # The public view: operating facilities, or suspended or closed ones when asked for.
        filters = FacilityFilters(**{**filters.__dict__, "status": FacilityStatus.approved})
    pages, after = [], None
    while True:
        async with registry.stack.registry.state.sessionmaker() as session:
            rows, cursor = await search.search(
                session=session, caller=caller, filters=filters, page=PageParams(limit=limit, after=after)
            )
        pages.append(([(f.id, d) for f, d in rows], cursor))
        if cursor is None:
            return pages
        after = decode_cursor(cursor)


async def pages_from_directory(
    registry: Registry, caller: Identity | None, filters: FacilityFilters, limit: int
) -> list[tuple[list[tuple[str, float | None]], str | None]]:
    directory = registry.stack.registry.state.directory
    pages, after = [], None
    while True:
        body = orjson.loads(
            await directory.search(
                caller=caller,
                filters=filters,
                page=PageParams(limit=limit, after=after),
                public=caller is None,
            )
        )
        pages.append(([(f["id"], f["distance_m"]) for f in body["items"]], body["next_cursor"]))
        if body["next_cursor"] is None:
            return pages
        after = decode_cursor(body["next_cursor"])


async def test_the_directory_pages_exactly_as_the_sql_search(registry: Registry) -> None:
    operator_id = "operator-under-test"
    await write_facilities(registry, 240, owner=operator_id)
    # Written straight to the database, as a seeder would: the directory learns of it at its next
    # poll; ask for the load now rather than wait for it (current() alone loads only when stale).
    registry.stack.registry.state.directory.mark_stale()
    await registry.stack.registry.state.directory.current()
    callers: list[Identity | None] = [
        None,
        Identity(client_id="edu", kind=ClientKind.bureau, bureau="EDU"),
        Identity(client_id="xuhui", kind=ClientKind.district, district_code="310104"),
        Identity(client_id=operator_id, kind=ClientKind.operator),
        Identity(client_id="nobody", kind=ClientKind.parent),
    ]
    filter_sets = [
        FacilityFilters(),
        FacilityFilters(near=Near(*CENTRE, radius_m=3000)),
        FacilityFilters(near=Near(*CENTRE, radius_m=800), free_places=AgeClass.toddler),
        FacilityFilters(near=Near(CENTRE[0] + 0.01, CENTRE[1], radius_m=50_000), inclusive=True),
        FacilityFilters(district_code="310104", kind=FacilityKind.private),
        FacilityFilters(status=FacilityStatus.suspended, service_mode=ServiceMode.full_day),
        FacilityFilters(free_places=AgeClass.infant, inclusive=False),
    ]
    compared = 0
    for caller in callers:
        for filters in filter_sets:
            for limit in (1, 7, 500):
                expected = await pages_from_sql(registry, caller, filters, limit)
                assert await pages_from_directory(registry, caller, filters, limit) == expected, (
                    caller,
                    filters,
                    limit,
                )
                compared += sum(len(items) for items, _ in expected)
    assert compared > 1000  # the comparisons saw facilities, not only empty pages


async def test_the_short_path_and_the_route_answer_alike(registry: Registry) -> None:
    """A plain search is answered before FastAPI's routing (services/registry/router/search_path.py); a
    repeated parameter sends the same search through the route. Both answers must be the same."""
    for i in range(4):
        await registry.approved(name=f"点{i}", lat=CENTRE[0] + i * 0.001, lon=CENTRE[1])
    await registry.submit(inclusive=False)
    searches = [
        (
            "/v1/public/facilities",
            {"near": f"{CENTRE[0]},{CENTRE[1]}", "radius_m": "2000", "limit": "3"},
            None,
        ),
        ("/v1/public/facilities", {"free_places": "toddler", "limit": "2"}, None),
        ("/v1/facilities", {"inclusive": "false", "limit": "2"}, "EDU"),
        ("/v1/facilities", {"district_code": "310101", "limit": "2"}, "district"),
    ]
    for path, params, who in searches:
        headers = registry[who] if who else {}
        short = await registry.client.get(path, params=params, headers=headers)
        routed = await registry.client.get(
            path, params=[*params.items(), ("limit", params["limit"])], headers=headers
        )
        assert short.status_code == routed.status_code == 200, (short.text, routed.text)
        assert short.json() == routed.json()
        assert short.json()["items"] or path == "/v1/facilities" and who == "district"
        cursor = short.json()["next_cursor"]
        if cursor:
            following = await registry.client.get(path, params={**params, "cursor": cursor}, headers=headers)
            assert following.status_code == 200 and following.json()["items"]


async def test_a_search_whose_revision_read_fails_is_a_503_not_a_500(registry: Registry) -> None:
    # The database away as an authenticated search reads the revision (the fast path answers
    # outside FastAPI's handlers): the route answers, and a database it cannot reach is a 503.
    directory = registry.stack.registry.state.directory
    await directory.current()  # nothing of this replica's own writes waiting: the fast path answers

    async def away() -> None:
        raise OperationalError("SELECT revision", {}, ConnectionRefusedError("the database restarts"))

    original = directory._load_changes_now
    directory._load_changes_now = away
    try:
        listed = await registry.client.get(
            "/v1/facilities", params={"limit": 5}, headers=registry["operator"]
        )
    finally:
        directory._load_changes_now = original
    assert listed.status_code == 503, listed.text
    assert (await registry.client.get("/v1/facilities", headers=registry["operator"])).status_code == 200
