"""双随机 plans: reproducible draws (same seed, same plan; another seed, another plan), their
verification, the previous draw's exclusions, the first tier of facilities not yet inspected this
year, and the draw's refusals."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from services.monitoring.models import InspectionPlan
from services.monitoring.service.draw import draw
from services.monitoring.service.plans import coverage_of
from tests.monitoring.casework_support import (
    EDU,
    HUANGPU,
    XUHUI,
    add_facilities,
    direct,
    month_after,
    this_month,
)
from tests.monitoring.conftest import MonitoringStack


def pairs(plan: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    return sorted(
        (i["facility_id"], tuple(i["inspector_ids"]))
        for i in plan["inspections"]
        if i["status"] != "cancelled"
    )


async def test_a_plan_drawn_twice_with_one_seed_is_identical(
    mon: MonitoringStack, keys: dict[str, Any]
) -> None:
    facilities = await add_facilities(mon, 12)
    district = await mon.headers("district")
    async with direct(mon, keys) as api:
        inspectors = await api.inspectors(4)
    month = this_month()
    body = {"district_code": XUHUI, "month": month, "sample_size": 4, "seed": "xuhui-2026-lottery-7"}
    first = await mon.client.post("/v1/inspection-plans", json=body, headers=district)
    assert first.status_code == 201, first.text
    plan = first.json()
    assert plan["seed"] == body["seed"] and plan["drawn"] == 4 and plan["algorithm"] == "es-tiered-v1"
    assert {i["facility_id"] for i in plan["inspections"]} <= set(facilities)
    for inspection in plan["inspections"]:
        assert len(set(inspection["inspector_ids"])) == 2 and set(inspection["inspector_ids"]) <= set(
            inspectors
        )
        assert inspection["status"] == "planned"
    assert [c["facility_id"] for c in plan["inputs"]["candidates"]] == facilities
    assert plan["inputs"]["inspectors"] == sorted(inspectors)

    again = await mon.client.post("/v1/inspection-plans", json=body, headers=district)
    assert again.status_code == 201
    assert pairs(again.json()) == pairs(plan) and again.json()["supersedes"] == plan["id"]
    replaced = (await mon.client.get(f"/v1/inspection-plans/{plan['id']}", headers=district)).json()
    assert replaced["superseded_by"] == again.json()["id"]
    assert {i["status"] for i in replaced["inspections"]} == {"cancelled"}

    other_seed = await mon.client.post(
        "/v1/inspection-plans", json=body | {"seed": "xuhui-2026-lottery-8"}, headers=district
    )
    assert other_seed.status_code == 201
    assert {f for f, _ in pairs(other_seed.json())} != {f for f, _ in pairs(plan)}

    generated = await mon.client.post("/v1/inspection-plans", json=body | {"seed": None}, headers=district)
    assert generated.status_code == 201 and len(generated.json()["seed"]) == 32

    for drawn in (plan, again.json(), other_seed.json(), generated.json()):
        check = await mon.client.get(f"/v1/inspection-plans/{drawn['id']}/verification", headers=district)
        assert check.status_code == 200 and check.json()["matches"] is True, check.text
    # A plan whose stored seed was altered no longer verifies.
    async with mon.monitoring.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(InspectionPlan).where(InspectionPlan.id == plan["id"]).values(seed="forged")
        )
    forged = await mon.client.get(f"/v1/inspection-plans/{plan['id']}/verification", headers=district)
    assert forged.json()["matches"] is False

    # Unannounced: the facilities and other districts do not see plans.
    for stranger in ("operator", "other_district"):
        path = f"/v1/inspection-plans/{plan['id']}"
        assert (await mon.client.get(path, headers=await mon.headers(stranger))).status_code == 404
    listed = await mon.client.get("/v1/inspection-plans", params={"month": month}, headers=district)
    assert len(listed.json()["items"]) == 4


async def test_the_previous_draw_excludes_its_inspectors(mon: MonitoringStack, keys: dict[str, Any]) -> None:
    facilities = await add_facilities(mon, 6)
    district = await mon.headers("district")
    async with direct(mon, keys) as api:
        await api.inspectors(4)
        month = this_month()
        first = await mon.client.post(
            "/v1/inspection-plans",
            json={"district_code": XUHUI, "month": month, "sample_size": 6, "seed": "a"},
            headers=district,
        )
        assert first.status_code == 201, first.text
        before = dict(pairs(first.json()))
        assert set(before) == set(facilities)
        # One facility is inspected this month: next month it is drawn last (it is in the second tier).
        inspected = first.json()["inspections"][0]
        result = await mon.client.post(
            f"/v1/inspections/{inspected['id']}/result",
            json={"items": [{"code": "records", "passed": True}], "outcome": "pass"},
            headers=district,
        )
        assert result.status_code == 200, result.text
        redraw = await mon.client.post(
            "/v1/inspection-plans",
            json={"district_code": XUHUI, "month": month, "sample_size": 6, "seed": "b"},
            headers=district,
        )
        assert redraw.status_code == 409  # a result was recorded: the month's draw stands

        next_month = month_after(month)
        second = await mon.client.post(
            "/v1/inspection-plans",
            json={"district_code": XUHUI, "month": next_month, "sample_size": 5, "seed": "a"},
            headers=district,
        )
        assert second.status_code == 201, second.text
        plan = second.json()
        assert plan["previous_plan_id"] == first.json()["id"]
        assert plan["inputs"]["relaxed_exclusions"] == []
        for facility_id, inspectors in pairs(plan):
            assert not set(inspectors) & set(before[facility_id]), facility_id
        if next_month[:4] == month[:4]:
            assert inspected["facility_id"] not in {f for f, _ in pairs(plan)}
            assert plan["coverage"]["not_inspected_this_year"] == 5

        # Fewer than two active inspectors: a clear 409.
        await api.inspectors(1, district=HUANGPU)
        await add_facilities(mon, 2, district=HUANGPU)
        lonely = await api.post(
            "/v1/inspection-plans", EDU, json={"district_code": HUANGPU, "month": month, "sample_size": 1}
        )
        assert lonely.status_code == 409 and "1 active inspector" in lonely.json()["detail"]


async def test_bad_plan_requests_are_refused(mon: MonitoringStack, keys: dict[str, Any]) -> None:
    district = await mon.headers("district")
    bad = await mon.client.post(
        "/v1/inspection-plans",
        json={"district_code": "31", "month": "2026-13", "sample_size": 0, "seed": "has space", "x": 1},
        headers=district,
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {
        "district_code",
        "month",
        "sample_size",
        "seed",
        "x",
    }
    past = await mon.client.post(
        "/v1/inspection-plans",
        json={"district_code": XUHUI, "month": "2020-01", "sample_size": 1},
        headers=district,
    )
    assert past.status_code == 422 and past.json()["errors"][0]["field"] == "month"
    elsewhere = await mon.client.post(
        "/v1/inspection-plans",
        json={"district_code": HUANGPU, "month": this_month(), "sample_size": 1},
        headers=district,
    )
    assert elsewhere.status_code == 403
    nothing = await mon.client.post(
        "/v1/inspection-plans",
        json={"district_code": XUHUI, "month": this_month(), "sample_size": 1},
        headers=district,
    )
    assert nothing.status_code == 409  # no inspectors yet
    async with direct(mon, keys) as api:
        await api.inspectors(2)
        no_facility = await api.post(
            "/v1/inspection-plans",
            EDU,
            json={"district_code": XUHUI, "month": this_month(), "sample_size": 1},
        )
        assert no_facility.status_code == 409 and "no approved facility" in no_facility.json()["detail"]
        bad_inspector = await api.post("/v1/inspectors", EDU, json={"district_code": "abc", "name": ""})
        assert {e["field"] for e in bad_inspector.json()["errors"]} == {"district_code", "name"}
        listed = await api.get("/v1/inspectors", EDU, params={"district_code": XUHUI})
        assert len(listed.json()["items"]) == 2


def synthetic(
    n: int, inspected: set[int] = frozenset(), weights: dict[int, float] | None = None
) -> dict[str, Any]:
    return {
        "sample_size": 3,
        "candidates": [
            {
                "facility_id": f"f{i:02d}",
                "tier": 1 if i in inspected else 0,
                "weight": (weights or {}).get(i, 1.0),
            }
            for i in range(n)
        ],
        "inspectors": ["i1", "i2", "i3", "i4"],
        "exclusions": {"f00": ["i1", "i2"]},
    }


def test_the_draw_is_a_function_of_its_inputs_and_seed() -> None:
    inputs = synthetic(20)
    assert draw(inputs, "s").pairs == draw(inputs, "s").pairs
    assert {f for f, _ in draw(inputs, "s").pairs} != {f for f, _ in draw(inputs, "t").pairs}
    # The first tier (not yet inspected this year) is always drawn before the second.
    tiered = synthetic(20, inspected=set(range(17)))
    for seed in ("a", "b", "c", "d"):
        assert {f for f, _ in draw(tiered, seed).pairs} == {"f17", "f18", "f19"}
    # Weight raises the odds: over many seeds the heavy facility is drawn far more often.
    heavy = synthetic(20, weights={5: 10.0})
    hits = sum("f05" in {f for f, _ in draw(heavy, str(s)).pairs} for s in range(200))
    assert hits > 100  # uniform: 3/20 of 200 = 30
    # f00's previous inspectors are never paired with it again.
    for seed in range(50):
        for facility, pair in draw(synthetic(3), str(seed)).pairs:
            if facility == "f00":
                assert set(pair) == {"i3", "i4"}


def test_coverage_says_when_the_year_cannot_be_covered() -> None:
    short = coverage_of(not_inspected=30, month="2026-11", sample_size=5)
    assert short.remaining_months == 2 and short.needed_sample_size == 15 and short.enough is False
    assert "at least 15" in short.note
    assert coverage_of(not_inspected=30, month="2026-01", sample_size=5).enough is True
    assert coverage_of(not_inspected=0, month="2026-12", sample_size=1).enough is True
