"""Fee schedules (收费公示): versioned, public, and held to the district's inclusive cap by EDU."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import pytest

from services.registry.config import RegistrySettings
from services.registry.service.fees import fees_within_cap
from tests.conftest import start_stack
from tests.registry.conftest import CLIENTS, Registry
from tests.registry.test_change_requests import coverage_points
from tests.support import DatabaseFactory

# 徐汇 (310104), where the test facilities are: the settings' default cap is 3,500 yuan a month.
WITHIN, ABOVE = "3200.00", "3800.00"


def schedule(full_day: str, effective_from: str = "2026-09-01", **extra: Any) -> dict[str, Any]:
    return {
        "effective_from": effective_from,
        "fees": [
            {"age_class": "toddler", "service_mode": "full_day", "amount": full_day},
            {"age_class": "toddler", "service_mode": "hourly", "amount": "60.00"},
        ],
        "meals_per_month": "450.00",
        "other_charges": [{"name": "被褥费", "amount": "200.00"}],
        **extra,
    }


async def record(registry: Registry, facility_id: str, body: dict[str, Any], who: str = "operator") -> Any:
    return await registry.client.post(f"/v1/facilities/{facility_id}/fees", json=body, headers=registry[who])


async def flagged(registry: Registry, who: str) -> list[str]:
    response = await registry.client.get("/v1/coverage/fees-over-cap", headers=registry[who])
    assert response.status_code == 200, response.text
    return [f["facility_id"] for f in response.json()["items"]]


async def test_a_schedule_is_published_versioned_and_public(registry: Registry) -> None:
    facility = await registry.approved(inclusive=False)
    first = await record(registry, facility["id"], schedule("4200.00"))
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "published" and first.json()["version"] == 1
    # Above the district's cap, but the cap binds inclusive facilities only.
    assert first.json()["max_full_day_monthly"] == "4200.00" and first.json()["over_cap"] is True
    second = await record(registry, facility["id"], schedule("4500", effective_from="2027-01-01"))
    assert second.status_code == 201 and second.json()["version"] == 2
    history = await registry.client.get(f"/v1/facilities/{facility['id']}/fees", headers=registry["operator"])
    assert [s["version"] for s in history.json()["items"]] == [2, 1]
    assert history.json()["items"][1]["fees"][0]["amount"] == "4200.00"

    page = (await registry.client.get(f"/v1/public/facilities/{facility['id']}")).json()
    assert page["fees"]["effective_from"] == "2027-01-01"
    assert page["fees"]["fees"][0] == {
        "age_class": "toddler",
        "service_mode": "full_day",
        "amount": "4500.00",
    }
    assert page["fees"]["meals_per_month"] == "450.00"
    listed = (await registry.client.get("/v1/public/facilities", params={"limit": 500})).json()["items"]
    assert next(f for f in listed if f["id"] == facility["id"])["fees"] == page["fees"]
    events = await registry.events("cradle.registry.fees.published")
    assert [e["data"]["fees"]["max_full_day_fen"] for e in events] == [420000, 450000]


async def test_the_fees_as_they_stand_today_and_each_version_by_its_location(registry: Registry) -> None:
    facility = await registry.approved()
    current = f"/v1/facilities/{facility['id']}/fees/current"
    empty = await registry.client.get(current, headers=registry["district"])
    assert empty.status_code == 200, empty.text
    assert empty.json() == {
        "facility_id": facility["id"],
        "in_force": None,
        "announced": None,
        "pending": None,
        "flagged_over_cap": False,
        "cap": "3500.00",
    }
    today = date.today()
    in_force = await record(registry, facility["id"], schedule(WITHIN, str(today - timedelta(days=30))))
    assert in_force.status_code == 201, in_force.text
    by_location = await registry.client.get(in_force.headers["location"], headers=registry["SAMR"])
    assert by_location.status_code == 200 and by_location.json() == in_force.json()
    announced = await record(registry, facility["id"], schedule("3300.00", str(today + timedelta(days=60))))
    pending = await record(registry, facility["id"], schedule(ABOVE, str(today + timedelta(days=90))))
    assert pending.json()["status"] == "pending"

    standing = (await registry.client.get(current, headers=registry["operator"])).json()
    assert (standing["in_force"]["version"], standing["announced"]["version"]) == (1, 2)
    assert standing["pending"]["version"] == 3
    assert standing["pending"]["change_request_id"] == pending.json()["change_request_id"]
    assert standing["flagged_over_cap"] is True and standing["cap"] == "3500.00"
    assert standing["announced"] == announced.json()

    for who in ("other_operator", "other_district"):
        assert (await registry.client.get(current, headers=registry[who])).status_code == 404, who
    missing = await registry.client.get(f"/v1/facilities/{facility['id']}/fees/9", headers=registry["EDU"])
    assert missing.status_code == 404
    zero = await registry.client.get(f"/v1/facilities/{facility['id']}/fees/0", headers=registry["EDU"])
    assert zero.status_code == 422


async def test_money_is_exact_and_every_wrong_field_is_named(registry: Registry) -> None:
    facility = await registry.approved()
    bad = schedule("3200.001")
    bad["other_charges"] = [{"name": "", "amount": "-5"}]
    response = await record(registry, facility["id"], bad)
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"fees.0.amount", "other_charges.0.name", "other_charges.0.amount"}, fields
    twice = schedule(WITHIN)
    twice["fees"].append({"age_class": "toddler", "service_mode": "hourly", "amount": "1"})
    response = await record(registry, facility["id"], twice)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "fees"


async def test_an_inclusive_facility_above_the_cap_waits_for_edu_and_is_flagged(registry: Registry) -> None:
    facility = await registry.approved()
    town = facility["town_code"]
    points = await coverage_points(registry, town)
    assert (await record(registry, facility["id"], schedule(WITHIN))).json()["status"] == "published"

    above = await record(registry, facility["id"], schedule(ABOVE, effective_from="2026-10-01"))
    assert above.status_code == 201, above.text
    assert above.json()["status"] == "pending" and above.json()["over_cap"] is True
    assert above.json()["cap"] == "3500.00"
    assert await flagged(registry, "district") == [facility["id"]]
    assert await flagged(registry, "EDU") == [facility["id"]]
    assert await flagged(registry, "other_district") == []
    assert await coverage_points(registry, town) == points - 1
    # The public page keeps the fees in force.
    page = (await registry.client.get(f"/v1/public/facilities/{facility['id']}")).json()
    assert page["fees"]["fees"][0]["amount"] == WITHIN

    # While flagged, a schedule within the cap also waits for EDU, and replaces the pending one.
    lowered = await record(registry, facility["id"], schedule("3400.00", effective_from="2026-10-01"))
    assert lowered.json()["status"] == "pending"
    requests_path = f"/v1/facilities/{facility['id']}/change-requests"
    requests = (await registry.client.get(requests_path, headers=registry["district"])).json()["items"]
    assert [r["status"] for r in requests] == ["pending", "superseded"]
    assert requests[0]["departments"] == ["EDU"] and requests[0]["kind"] == "fees"
    by_health = await registry.client.post(
        f"{requests_path}/{requests[0]['id']}/reviews",
        json={"department": "HEALTH", "decision": "approve"},
        headers=registry["HEALTH"],
    )
    assert by_health.status_code == 403
    approved = await registry.client.post(
        f"{requests_path}/{requests[0]['id']}/reviews",
        json={"department": "EDU", "decision": "approve"},
        headers=registry["EDU"],
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert await flagged(registry, "district") == []
    assert await coverage_points(registry, town) == points
    history = (
        await registry.client.get(f"/v1/facilities/{facility['id']}/fees", headers=registry["SAMR"])
    ).json()
    assert [s["status"] for s in history["items"]] == ["published", "superseded", "published"]
    page = (await registry.client.get(f"/v1/public/facilities/{facility['id']}")).json()
    assert page["fees"]["fees"][0]["amount"] == "3400.00" and page["inclusive"] is True


async def test_edu_approving_fees_above_the_cap_ends_the_inclusive_status(registry: Registry) -> None:
    facility = await registry.approved()
    pending = (await record(registry, facility["id"], schedule(ABOVE))).json()
    path = f"/v1/facilities/{facility['id']}/change-requests/{pending['change_request_id']}/reviews"
    approved = await registry.client.post(
        path, json={"department": "EDU", "decision": "approve"}, headers=registry["EDU"]
    )
    assert approved.status_code == 200, approved.text
    read = (
        await registry.client.get(f"/v1/facilities/{facility['id']}", headers=registry["operator"])
    ).json()
    assert read["inclusive"] is False
    assert await flagged(registry, "EDU") == []
    updated = await registry.events("cradle.registry.facility.updated")
    assert updated[-1]["data"]["inclusive"] is False


async def test_a_rejection_keeps_the_flag_until_a_schedule_within_the_cap(registry: Registry) -> None:
    facility = await registry.approved()
    pending = (await record(registry, facility["id"], schedule(ABOVE))).json()
    path = f"/v1/facilities/{facility['id']}/change-requests/{pending['change_request_id']}/reviews"
    rejected = await registry.client.post(
        path,
        json={"department": "EDU", "decision": "reject", "note": "超出普惠限价"},
        headers=registry["EDU"],
    )
    assert rejected.json()["status"] == "rejected"
    assert await flagged(registry, "district") == [facility["id"]]


async def test_who_reads_and_writes_fees(registry: Registry) -> None:
    facility = await registry.approved()
    path = f"/v1/facilities/{facility['id']}/fees"
    assert (await record(registry, facility["id"], schedule(WITHIN), who="other_operator")).status_code == 404
    assert (await record(registry, facility["id"], schedule(WITHIN), who="SAMR")).status_code == 403
    assert (await record(registry, facility["id"], schedule(WITHIN))).status_code == 201
    for who in ("SAMR", "EDU", "district", "operator"):
        assert (await registry.client.get(path, headers=registry[who])).status_code == 200, who
    for who in ("other_operator", "other_district"):
        assert (await registry.client.get(path, headers=registry[who])).status_code == 404, who
    assert (await registry.client.get("/v1/coverage/fees-over-cap", headers=registry["operator"])).json() == {
        "items": [],
        "next_cursor": None,
    }


async def test_fees_within_cap_reads_the_schedule_in_force(registry: Registry) -> None:
    within = await registry.approved()
    above = await registry.approved(inclusive=False)
    none = await registry.approved()
    assert (
        await record(registry, within["id"], schedule(WITHIN, effective_from="2026-09-01"))
    ).status_code == 201
    assert (
        await record(registry, above["id"], schedule(ABOVE, effective_from="2026-09-01"))
    ).status_code == 201
    async with registry.stack.registry.state.sessionmaker() as session:
        assert await fees_within_cap(session, within["id"], date(2026, 9, 30)) is True
        assert await fees_within_cap(session, within["id"], date(2026, 8, 31)) is False  # not yet in force
        assert await fees_within_cap(session, above["id"], date(2026, 9, 30)) is False
        assert await fees_within_cap(session, none["id"], date(2026, 9, 30)) is False


async def test_an_application_leaving_inclusive_is_no_longer_flagged(registry: Registry) -> None:
    facility = await registry.submit()
    assert (await record(registry, facility["id"], schedule(ABOVE))).json()["status"] == "pending"
    assert await flagged(registry, "district") == [facility["id"]]
    edited = await registry.client.patch(
        f"/v1/facilities/{facility['id']}", json={"inclusive": False}, headers=registry["operator"]
    )
    assert edited.status_code == 200, edited.text
    assert await flagged(registry, "district") == []


# A deployment's caps (REGISTRY_FEE_CAPS): 徐汇 its own for 2026 and 2028, 黄浦 from 2027, every other
# district one for 2026.
CAPS = {"310104": {2026: "3000", 2028: "3300"}, "310101": {2027: "3600"}, "*": {2026: "2800"}}


@pytest.fixture
async def capped(
    databases: DatabaseFactory, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> AsyncIterator[Registry]:
    async with start_stack(
        databases=databases,
        nats_url=shared_nats_url,
        namespace=namespace,
        keys=keys,
        overrides={"registry": {"fee_caps": CAPS}},
    ) as stack:
        yield Registry(stack, {who: await stack.headers_for(**body) for who, body in CLIENTS.items()})


async def test_the_cap_is_the_districts_own_for_the_year_the_schedule_takes_effect(capped: Registry) -> None:
    xuhui = await capped.approved()
    huangpu = await capped.approved(town_code="310101002", lat=31.238, lon=121.484)
    pudong = await capped.approved(town_code="310115004", lat=31.225, lon=121.530)

    async def recorded(facility: dict[str, Any], full_day: str, effective_from: str) -> tuple[str, str, bool]:
        response = await record(capped, facility["id"], schedule(full_day, effective_from=effective_from))
        assert response.status_code == 201, response.text
        body = response.json()
        return body["cap"], body["status"], body["over_cap"]

    # 徐汇: 2026's cap, kept in 2027 (no cap of its own that year), 2028's from then on.
    assert await recorded(xuhui, "2900.00", "2026-09-01") == ("3000.00", "published", False)
    assert await recorded(xuhui, "3100.00", "2027-01-01") == ("3000.00", "pending", True)
    # Flagged now, so even a schedule within 2028's higher cap waits for EDU.
    assert await recorded(xuhui, "3200.00", "2028-01-01") == ("3300.00", "pending", False)
    # 黄浦 has no cap before 2027: every district's for 2026; its own from 2027.
    assert await recorded(huangpu, "2700.00", "2026-09-01") == ("2800.00", "published", False)
    assert await recorded(huangpu, "3500.00", "2027-03-01") == ("3600.00", "published", False)
    # 浦东 is not named: every district's.
    assert await recorded(pudong, "2900.00", "2026-09-01") == ("2800.00", "pending", True)
    assert sorted(await flagged(capped, "EDU")) == sorted([xuhui["id"], pudong["id"]])
    assert await flagged(capped, "other_district") == []  # 黄浦's office: its facility keeps within
    async with capped.stack.registry.state.sessionmaker() as session:
        assert await fees_within_cap(session, huangpu["id"], date(2027, 3, 31)) is True
        assert await fees_within_cap(session, huangpu["id"], date(2027, 2, 28)) is True  # 2,700 ≤ 3,600


def test_caps_are_set_per_district_and_year_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, keys: dict[str, Any]
) -> None:
    monkeypatch.setenv(
        "REGISTRY_FEE_CAPS", '{"310104": {"2026": 3000, "2028": "3300.50"}, "*": {"2026": 2800}}'
    )
    settings = RegistrySettings(database_url="sqlite+aiosqlite://", internal_verify_key=keys["verify"])
    assert {
        code: {year: str(cap) for year, cap in years.items()} for code, years in settings.fee_caps.items()
    } == {
        "310104": {2026: "3000", 2028: "3300.50"},
        "*": {2026: "2800"},
    }
