"""The gateway's composite views over all four real services: the facility profile (each part read
with the caller's identity; a service down marks its parts unavailable) and the plan's indicators."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from services.monitoring.models import Facility as MonitoredFacility
from services.workforce.models import FacilityProjection
from tests.conftest import Stack, facility_body
from tests.support import eventually

READ_ALL = ["registry:read", "workforce:read", "monitoring:read", "guidance:read"]
REVIEWERS = ("EDU", "HEALTH", "FIRE", "SAMR")
DOMAIN_IDS = {
    "new_inclusive_points",
    "inclusive_town_coverage",
    "central_street_coverage",
    "kindergarten_nursery_share",
    "guidance_station_coverage",
    "child_friendly_sites",
    "development_bases",
    "certified_rate",
    "training_compliance",
    "annual_onsite_inspection",
    "newborn_home_visits",
    "offline_guidance",
    "guidance_events",
    "observation_room_pilots",
    "handbook_coverage",
}


@pytest.fixture(autouse=True)
def patient_views(monkeypatch: pytest.MonkeyPatch) -> None:
    """A part is `unavailable` here because its service refuses connections, never because a loaded
    machine took longer than production's 3 s to answer (a complete profile once failed so)."""
    monkeypatch.setenv("GATEWAY_VIEW_PART_TIMEOUT_SECONDS", "30")


@contextlib.contextmanager
def down(stack: Stack, service: str) -> Iterator[None]:
    """The service stops answering the gateway (connection refused) until the block ends."""
    with stack.down(service):
        yield


async def approved_everywhere(stack: Stack, operator: dict[str, str]) -> str:
    response = await stack.client.post("/v1/facilities", json=facility_body(), headers=operator)
    assert response.status_code == 201, response.text
    facility_id = response.json()["id"]
    for department in REVIEWERS:
        reviewer = await stack.headers_for(
            name=department, kind="bureau", bureau=department, scopes=["registry:review"]
        )
        reviewed = await stack.client.post(
            f"/v1/facilities/{facility_id}/reviews",
            json={"department": department, "decision": "approve"},
            headers=reviewer,
        )
        assert reviewed.status_code == 200, reviewed.text

    async def projected() -> bool:
        async with stack.workforce.state.sessionmaker() as session:
            in_workforce = await session.get(FacilityProjection, facility_id)
        async with stack.monitoring.state.sessionmaker() as session:
            in_monitoring = await session.get(MonitoredFacility, facility_id)
        return bool(
            in_workforce
            and in_workforce.status == "approved"
            and in_monitoring
            and in_monitoring.status == "approved"
        )

    await eventually(projected)
    return facility_id


async def test_the_profile_gathers_every_part_and_survives_a_service_down(full_stack: Stack) -> None:
    operator = await full_stack.headers_for(
        name="小太阳托育", kind="operator", scopes=["registry:write", *READ_ALL]
    )
    facility_id = await approved_everywhere(full_stack, operator)

    profile = await full_stack.client.get(f"/v1/facilities/{facility_id}/profile", headers=operator)
    assert profile.status_code == 200, profile.text
    body = profile.json()
    assert body["complete"] is True, body
    assert body["facility"]["data"]["name"] == "徐汇区天平街道社区托育点"
    assert body["staffing"]["data"]["met"] is True
    assert body["training"]["data"]["practitioners"] == 0
    assert body["open_alerts"]["data"]["items"] == []
    assert body["last_inspection"] == {"status": "ok"}  # none yet
    assert body["risk"]["status"] == "ok" and "score" in body["risk"]["data"]
    assert body["health"]["data"] == {
        "facility_id": facility_id,
        "entry_health_checks": [],
        "health_assessments": [],
    }
    assert body["fees"]["data"]["in_force"] is None and body["fees"]["data"]["flagged_over_cap"] is False
    assert body["complaints"]["data"] == {"items": [], "more": False}
    assert body["subsidies"]["data"] == {"items": [], "more": False}

    # Its fees disclosed and a complaint lodged by the public: the profile shows both, and the
    # operator never sees who complained.
    fees = await full_stack.client.post(
        f"/v1/facilities/{facility_id}/fees",
        json={
            "effective_from": str(date.today() - timedelta(days=1)),
            "fees": [{"age_class": "toddler", "service_mode": "full_day", "amount": "3200.00"}],
        },
        headers=operator,
    )
    assert fees.status_code == 201, fees.text
    lodged = await full_stack.client.post(
        "/v1/complaints",
        json={
            "facility_id": facility_id,
            "category": "food",
            "description": "午餐与公示食谱不符",
            "complainant_name": "王晓梅",
            "complainant_phone": "13800138000",
        },
    )
    assert lodged.status_code == 201, lodged.text
    body = (await full_stack.client.get(f"/v1/facilities/{facility_id}/profile", headers=operator)).json()
    assert body["complete"] is True, body
    assert body["fees"]["data"]["in_force"]["max_full_day_monthly"] == "3200.00"
    [complaint] = body["complaints"]["data"]["items"]
    assert complaint["id"] == lodged.json()["id"] and complaint["complainant"] is None
    assert "13800138000" not in str(body) and "王晓梅" not in str(body)

    with down(full_stack, "monitoring"):
        partial = await full_stack.client.get(f"/v1/facilities/{facility_id}/profile", headers=operator)
    assert partial.status_code == 200
    parts = partial.json()
    assert parts["complete"] is False
    assert {
        name for name in parts if isinstance(parts[name], dict) and parts[name].get("status") == "unavailable"
    } == {
        "open_alerts",
        "last_inspection",
        "risk",
        "complaints",
    }
    assert parts["facility"]["status"] == "ok" and parts["staffing"]["status"] == "ok"

    # Another operator learns nothing, not even that the facility exists.
    other = await full_stack.headers_for(name="另一家", kind="operator", scopes=READ_ALL)
    assert (
        await full_stack.client.get(f"/v1/facilities/{facility_id}/profile", headers=other)
    ).status_code == 404
    # A caller without registry:read is refused at the door.
    reader = await full_stack.headers_for(
        name="只读监测", kind="bureau", bureau="EDU", scopes=["monitoring:read"]
    )
    assert (
        await full_stack.client.get(f"/v1/facilities/{facility_id}/profile", headers=reader)
    ).status_code == 403


async def test_indicators_report_every_domain_row_and_what_is_unavailable(full_stack: Stack) -> None:
    operator = await full_stack.headers_for(
        name="小太阳托育", kind="operator", scopes=["registry:write", *READ_ALL]
    )
    await approved_everywhere(full_stack, operator)
    wcwc = await full_stack.headers_for(
        name="市妇儿工委", kind="bureau", bureau="WCWC", scopes=["indicators:read"]
    )

    response = await full_stack.client.get("/v1/indicators", headers=wcwc)
    assert response.status_code == 200, response.text
    body = response.json()
    rows = {row["id"]: row for row in body["items"]}
    assert set(rows) == DOMAIN_IDS
    assert all({"target", "actual", "met", "task"} <= set(row) for row in rows.values())
    assert all(status == "ok" for status in body["sources"].values()), body["sources"]
    points = rows["new_inclusive_points"]
    assert (points["actual"], points["target"], points["met"], points["task"]) == (1, 50, False, "T1")
    town = rows["inclusive_town_coverage"]
    assert (town["numerator"], town["denominator"]) == (1, 216)
    assert rows["annual_onsite_inspection"]["denominator"] == 1
    assert rows["development_bases"]["target"] == {"districts": 16, "bases": 18}
    # T19 gives no number: no target, never met or missed; births from the 2020 census until HEALTH
    # records later years.
    handbook = rows["handbook_coverage"]
    assert (handbook["target"], handbook["met"], handbook["task"]) == (None, None, "T19")
    assert handbook["denominator"] == 124_666 and handbook["unit"] == "share"

    with down(full_stack, "guidance"):
        partial = (await full_stack.client.get("/v1/indicators", headers=wcwc)).json()
    by_id = {row["id"]: row for row in partial["items"]}
    assert partial["sources"]["guidance"] == "unavailable"
    assert by_id["guidance_station_coverage"]["status"] == "unavailable"
    assert by_id["guidance_station_coverage"]["met"] is None
    assert by_id["new_inclusive_points"]["status"] == "ok"

    bad = await full_stack.client.get("/v1/indicators?year=1999", headers=wcwc)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "year"
    assert (await full_stack.client.get("/v1/indicators", headers=operator)).status_code == 403
