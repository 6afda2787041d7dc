"""Quality assessments by dimension (T22): the versioned quality framework EDU keeps, each assessment
graded by the version in force and keeping it, who may assess by which method, and the public
search by grade and demonstration status. Through the gateway."""

from __future__ import annotations

from datetime import date
from typing import Any

from tests.registry.conftest import Registry

STANDARD_DIMENSIONS = [
    "facility_conditions",
    "workforce",
    "care",
    "health_care",
    "parenting_support",
    "safety",
    "management",
]


def body(method: str, grade: str = "B", dimension_grades: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "method": method,
        "scores": {"overall": 85},
        "grade": grade,
        "assessed_on": str(date.today()),
        "assessor": "上海市托育服务评估中心",
    }
    if dimension_grades is not None:
        out["dimension_grades"] = dimension_grades
    return out


async def current(registry: Registry) -> dict[str, Any]:
    response = await registry.client.get("/v1/quality/frameworks/current", headers=registry["operator"])
    assert response.status_code == 200, response.text
    return response.json()


async def test_assessments_are_graded_by_dimension_of_the_version_in_force(registry: Registry) -> None:
    first = await registry.client.get("/v1/quality/frameworks/1", headers=registry["district"])
    assert [d["code"] for d in first.json()["dimensions"]] == STANDARD_DIMENSIONS
    assert [d["name"] for d in first.json()["dimensions"]] == [
        "办托条件",
        "托育队伍",
        "保育照护",
        "卫生保健",
        "养育支持",
        "安全保障",
        "机构管理",
    ]
    facility = await registry.approved()
    path = f"/v1/facilities/{facility['id']}/assessments"
    framework = await current(registry)
    codes = [d["code"] for d in framework["dimensions"]]
    graded = await registry.client.post(
        path, json=body("self", "A", dict.fromkeys(codes, "A")), headers=registry["operator"]
    )
    assert graded.status_code == 201, graded.text
    assert graded.json()["framework_version"] == framework["version"]

    wrong = {**dict.fromkeys(codes[1:], "B"), "cuteness": "A"}
    refused = await registry.client.post(path, json=body("self", "A", wrong), headers=registry["operator"])
    assert refused.status_code == 422
    assert {e["field"] for e in refused.json()["errors"]} == {
        f"dimension_grades.{codes[0]}",
        "dimension_grades.cuteness",
    }

    # EDU publishes a new version; the old one and the assessments graded by it stay as they were.
    new_version = {
        "title": "托育机构质量评估 修订",
        "source": "WS/T 821—2023 托育机构质量评估标准",
        "dimensions": [
            {"code": "care", "name": "保育照护", "items": [{"code": "daily_routine", "name": "一日生活"}]},
            {"code": "safety", "name": "安全保障", "items": []},
        ],
    }
    for who in ("district", "HEALTH", "operator"):
        denied = await registry.client.post("/v1/quality/frameworks", json=new_version, headers=registry[who])
        assert denied.status_code == 403, who
    published = await registry.client.post(
        "/v1/quality/frameworks", json=new_version, headers=registry["EDU"]
    )
    assert published.status_code == 201, published.text
    version = published.json()["version"]
    assert version == framework["version"] + 1
    assert (await current(registry))["version"] == version
    again = await registry.client.get(
        f"/v1/quality/frameworks/{framework['version']}", headers=registry["EDU"]
    )
    assert again.json() == framework
    old_codes = await registry.client.post(
        path, json=body("self", "B", dict.fromkeys(codes, "B")), headers=registry["operator"]
    )
    assert old_codes.status_code == 422
    on_new = await registry.client.post(
        path, json=body("self", "B", {"care": "B", "safety": "A"}), headers=registry["operator"]
    )
    assert on_new.json()["framework_version"] == version
    listed = (await registry.client.get(path, headers=registry["operator"])).json()["items"]
    assert sorted(a["framework_version"] for a in listed) == [framework["version"], version]
    recorded = await registry.events("cradle.registry.assessment.recorded")
    assert {"care": "B", "safety": "A"} in [e["data"]["assessment"]["dimension_grades"] for e in recorded]
    assert len(await registry.events("cradle.registry.quality_framework.published")) >= 1

    duplicate = {**new_version, "dimensions": [new_version["dimensions"][0]] * 2}
    bad = await registry.client.post("/v1/quality/frameworks", json=duplicate, headers=registry["EDU"])
    assert bad.status_code == 422


async def test_who_assesses_by_which_method(registry: Registry) -> None:
    facility = await registry.approved()
    path = f"/v1/facilities/{facility['id']}/assessments"
    # Peer review by another facility's operator, the district; commissioned by HEALTH or EDU.
    for who, method, status in (
        ("other_operator", "peer", 201),
        ("district", "peer", 201),
        ("HEALTH", "commissioned", 201),
        ("EDU", "commissioned", 201),
        ("operator", "peer", 403),  # its own facility is not a peer's
        ("other_operator", "self", 404),  # another's facility, for anything but a peer review
        ("district", "commissioned", 403),
        ("other_district", "peer", 404),
        ("HEALTH", "self", 403),
    ):
        response = await registry.client.post(path, json=body(method), headers=registry[who])
        assert response.status_code == status, (who, method, response.text)
    # An application is not a peer's to review: it is not public.
    submitted = await registry.submit()
    hidden = await registry.client.post(
        f"/v1/facilities/{submitted['id']}/assessments", json=body("peer"), headers=registry["other_operator"]
    )
    assert hidden.status_code == 404


async def test_public_search_by_grade_and_demonstration(registry: Registry) -> None:
    graded = await registry.approved(name="评估为B的托育点")
    plain = await registry.approved(name="未评估的托育点")
    await registry.client.post(
        f"/v1/facilities/{graded['id']}/assessments", json=body("commissioned", "B"), headers=registry["EDU"]
    )
    await registry.client.post(
        f"/v1/facilities/{graded['id']}/demonstration",
        json={"designated": True, "reason": "市级示范"},
        headers=registry["EDU"],
    )

    async def public(**params: Any) -> list[dict[str, Any]]:
        response = await registry.client.get("/v1/public/facilities", params={"limit": 100, **params})
        assert response.status_code == 200, response.text
        return response.json()["items"]

    by_grade = await public(grade="B")
    assert graded["id"] in [f["id"] for f in by_grade] and plain["id"] not in [f["id"] for f in by_grade]
    assert {f["grade"] for f in by_grade} == {"B"}
    shown = await public(grade="B", demonstration="true")
    assert graded["id"] in [f["id"] for f in shown] and all(f["is_demonstration"] for f in shown)
    not_shown = await public(demonstration="false")
    assert graded["id"] not in [f["id"] for f in not_shown] and plain["id"] in [f["id"] for f in not_shown]
    authenticated = await registry.client.get(
        "/v1/facilities", params={"grade": "B", "demonstration": "true"}, headers=registry["EDU"]
    )
    assert graded["id"] in [f["id"] for f in authenticated.json()["items"]]
    bad = await registry.client.get("/v1/public/facilities", params={"grade": "E", "demonstration": "maybe"})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"grade", "demonstration"}
