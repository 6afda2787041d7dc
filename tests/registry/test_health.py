"""Health (卫生保健): the operator's monthly entry health checks (入托体检), HEALTH's yearly 卫生保健
assessment with its history, and HEALTH's figures per district, all through the gateway."""

from __future__ import annotations

from datetime import date
from typing import Any

from tests.registry.conftest import Registry


def checks(month: str, enrolled: int, checked: int) -> dict[str, Any]:
    return {"month": month, "children_enrolled": enrolled, "children_checked": checked}


def assessment(year: int, result: str, notes: str = "") -> dict[str, Any]:
    return {"year": year, "result": result, "assessed_on": f"{year}-01-15", "notes": notes}


async def test_the_operator_reports_entry_checks_and_readers_see_them(registry: Registry) -> None:
    facility = await registry.approved()
    path = f"/v1/facilities/{facility['id']}/entry-health-checks"
    first = await registry.client.put(path, json=checks("2026-02", 40, 36), headers=registry["operator"])
    assert first.status_code == 200, first.text
    assert first.json()["share_checked"] == 0.9
    again = await registry.client.put(path, json=checks("2026-02", 40, 38), headers=registry["operator"])
    assert again.json()["children_checked"] == 38  # the month's latest word
    await registry.client.put(path, json=checks("2026-03", 42, 42), headers=registry["operator"])

    for reader in ("operator", "district", "HEALTH"):
        listed = (await registry.client.get(path, headers=registry[reader])).json()
        assert [(r["month"], r["children_checked"]) for r in listed["items"]] == [
            ("2026-03", 42),
            ("2026-02", 38),
        ]
    events = await registry.events("cradle.registry.entry_health_check.reported")
    assert [e["data"]["entry_health_check"]["children_checked"] for e in events] == [36, 38, 42]
    assert events[0]["data"]["facility_id"] == facility["id"]

    # Only the operator writes; another operator and another district do not even see it.
    assert (
        await registry.client.put(path, json=checks("2026-03", 1, 1), headers=registry["HEALTH"])
    ).status_code == 403
    assert (
        await registry.client.put(path, json=checks("2026-03", 1, 1), headers=registry["other_operator"])
    ).status_code == 404
    assert (await registry.client.get(path, headers=registry["other_district"])).status_code == 404
    bad = await registry.client.put(
        path,
        json={"month": "2026-13", "children_enrolled": 5, "children_checked": 6},
        headers=registry["operator"],
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"month"}
    over = await registry.client.put(path, json=checks("2026-04", 5, 6), headers=registry["operator"])
    assert over.status_code == 422


async def test_health_records_the_yearly_assessment_and_keeps_the_earlier_one(registry: Registry) -> None:
    facility = await registry.approved()
    path = f"/v1/facilities/{facility['id']}/health-assessments"
    year = date.today().year
    for who in ("EDU", "operator", "district"):
        refused = await registry.client.post(path, json=assessment(year, "qualified"), headers=registry[who])
        assert refused.status_code == 403, who
    first = await registry.client.post(
        path, json=assessment(year, "basically_qualified"), headers=registry["HEALTH"]
    )
    assert first.status_code == 201, first.text
    second = await registry.client.post(
        path, json=assessment(year, "qualified", "整改后复评"), headers=registry["HEALTH"]
    )
    assert second.status_code == 201
    await registry.client.post(path, json=assessment(year - 1, "unqualified"), headers=registry["HEALTH"])

    listed = (await registry.client.get(path, headers=registry["operator"])).json()["items"]
    assert [(a["year"], a["result"], a["superseded"]) for a in listed] == [
        (year, "qualified", False),
        (year, "basically_qualified", True),
        (year - 1, "unqualified", False),
    ]
    profile = (
        await registry.client.get(f"/v1/facilities/{facility['id']}/health", headers=registry["district"])
    ).json()
    assert [(a["year"], a["result"]) for a in profile["health_assessments"]] == [
        (year, "qualified"),
        (year - 1, "unqualified"),
    ]
    recorded = await registry.events("cradle.registry.health_assessment.recorded")
    assert [e["data"]["health_assessment"]["result"] for e in recorded] == [
        "basically_qualified",
        "qualified",
        "unqualified",
    ]
    bad = await registry.client.post(
        path,
        json={"year": 1999, "result": "excellent", "assessed_on": "2999-01-01"},
        headers=registry["HEALTH"],
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"year", "result", "assessed_on"}
    submitted = await registry.submit()
    not_licensed = await registry.client.post(
        f"/v1/facilities/{submitted['id']}/health-assessments",
        json=assessment(year, "qualified"),
        headers=registry["HEALTH"],
    )
    assert not_licensed.status_code == 409


async def figures(registry: Registry, who: str = "HEALTH", **params: Any) -> dict[str, Any]:
    response = await registry.client.get("/v1/health/figures", params=params, headers=registry[who])
    assert response.status_code == 200, response.text
    return response.json()


def xuhui(body: dict[str, Any]) -> dict[str, Any]:
    [district] = [d for d in body["districts"] if d["code"] == "310104"]
    return district


async def test_health_figures_per_district(registry: Registry) -> None:
    """Figures move by what this test records (the module's other tests share the database)."""
    year = date.today().year
    before = xuhui(await figures(registry, year=year))
    first = await registry.approved()
    second = await registry.approved(town_code="310104004")
    for facility, enrolled, checked in ((first, 40, 30), (second, 10, 10)):
        checks_path = f"/v1/facilities/{facility['id']}/entry-health-checks"
        # An earlier month of the year does not count beside the latest.
        await registry.client.put(checks_path, json=checks(f"{year}-01", 99, 1), headers=registry["operator"])
        await registry.client.put(
            checks_path, json=checks(f"{year}-02", enrolled, checked), headers=registry["operator"]
        )
    assessments = f"/v1/facilities/{first['id']}/health-assessments"
    await registry.client.post(assessments, json=assessment(year, "unqualified"), headers=registry["HEALTH"])
    await registry.client.post(assessments, json=assessment(year, "qualified"), headers=registry["HEALTH"])

    body = await figures(registry, year=year)
    after = xuhui(body)
    assert after["children_enrolled"] - before["children_enrolled"] == 50
    assert after["children_checked"] - before["children_checked"] == 40
    assert after["facilities_reporting"] - before["facilities_reporting"] == 2
    assert after["facilities_licensed"] - before["facilities_licensed"] == 2
    results = {k: after["results"][k] - before["results"][k] for k in after["results"]}
    assert results == {"qualified": 1, "basically_qualified": 0, "unqualified": 0}
    assert after["share_checked"] == round(after["children_checked"] / after["children_enrolled"], 4)
    assert len(body["districts"]) == 16 and body["city"]["children_checked"] >= after["children_checked"]

    # A district reads its own district only; an operator reads none.
    own = await figures(registry, "district", year=year)
    assert [d["code"] for d in own["districts"]] == ["310104"]
    assert own["city"]["children_enrolled"] == own["districts"][0]["children_enrolled"]
    refused = await registry.client.get(
        "/v1/health/figures", params={"district_code": "310101"}, headers=registry["district"]
    )
    assert refused.status_code == 403
    assert (await registry.client.get("/v1/health/figures", headers=registry["operator"])).status_code == 403
