"""The risk score and its reasons, the ranking of a district and the city's pages at city scale,
and the figures for the plan's indicators. (How fast is a benchmark's question, never a test's.)"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, update

from services.monitoring.models import Alert, Facility, Incident, Inspection
from tests.monitoring.casework_support import (
    DISTRICT,
    EDU,
    HUANGPU,
    OPERATOR,
    XUHUI,
    add_facilities,
    direct,
    owned_facility,
)
from tests.monitoring.conftest import MonitoringStack


def alert_row(
    facility_id: str,
    district: str,
    type: str,
    severity: str,
    *,
    status: str = "open",
    at: datetime | None = None,
) -> dict[str, Any]:
    at = at or datetime.now(UTC)
    return {
        "id": str(uuid.uuid4()),
        "facility_id": facility_id,
        "district_code": district,
        "type": type,
        "severity": severity,
        "status": status,
        "source": "workforce" if type in ("ban_issued", "hire_blocked") else "cctv",
        "count": 1,
        "first_at": at,
        "last_at": at,
        "raised_at": at,
        "details": {},
        "version": 1,
        "updated_at": at,
    }


def incident_row(
    facility_id: str, district: str, category: str, status: str, *, at: datetime | None = None
) -> dict[str, Any]:
    at = at or datetime.now(UTC)
    return {
        "id": str(uuid.uuid4()),
        "facility_id": facility_id,
        "district_code": district,
        "category": category,
        "severity": "high",
        "status": status,
        "description": "",
        "practitioner_ids": [],
        "reported_by_kind": "facility",
        "reporter_client_id": "seed",
        "occurred_at": at - timedelta(hours=1),
        "reported_at": at,
        "report_due_at": at + timedelta(hours=1),
        "reported_late": False,
        "finding_due_at": at + timedelta(hours=72),
        "outcome": None if status == "reported" else status,
        "decided_at": None if status == "reported" else at,
        "abuser_practitioner_ids": [],
        "responsible_manager_ids": [],
        "version": 1,
        "updated_at": at,
    }


def inspection_row(
    facility_id: str, district: str, outcome: str, inspected_on: date, rectify_by: date | None = None
) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": str(uuid.uuid4()),
        "facility_id": facility_id,
        "district_code": district,
        "inspector_ids": [],
        "status": "completed",
        "outcome": outcome,
        "items": [],
        "inspected_on": inspected_on,
        "rectify_by": rectify_by,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


async def seed(mon: MonitoringStack, table: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        async with mon.monitoring.state.sessionmaker() as session, session.begin():
            await session.execute(insert(table), rows)


async def test_a_facilitys_risk_names_its_reasons(mon: MonitoringStack, keys: dict[str, Any]) -> None:
    risky = await owned_facility(mon)
    short_staffed, quiet = await add_facilities(mon, 2)
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    long_ago = datetime.now(UTC) - timedelta(days=400)
    await seed(
        mon,
        Alert,
        [
            alert_row(risky, XUHUI, "abuse_suspected", "critical"),
            alert_row(risky, XUHUI, "smoke_fire", "critical", status="resolved"),  # dealt with
            alert_row(risky, XUHUI, "ban_issued", "high"),
            alert_row(risky, XUHUI, "ban_issued", "high", at=long_ago),  # outside the 12 months
            alert_row(risky, XUHUI, "hire_blocked", "high"),
        ],
    )
    await seed(
        mon,
        Incident,
        [
            incident_row(risky, XUHUI, "abuse", "confirmed"),
            incident_row(risky, XUHUI, "injury", "unfounded"),
            incident_row(risky, XUHUI, "injury", "reported"),
        ],
    )
    await seed(
        mon,
        Inspection,
        [
            inspection_row(risky, XUHUI, "fail", today - timedelta(days=10)),
            inspection_row(
                risky, XUHUI, "rectify", today - timedelta(days=40), rectify_by=today - timedelta(days=1)
            ),
            inspection_row(quiet, XUHUI, "pass", today - timedelta(days=3)),
        ],
    )
    async with mon.monitoring.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(Facility)
            .where(Facility.id.in_([risky, short_staffed]))
            .values(staffing_in_ratio=False, staffing_shortfall=3)
        )

    district = await mon.headers("district")
    response = await mon.client.get(f"/v1/facilities/{risky}/risk", headers=district)
    assert response.status_code == 200, response.text
    risk = response.json()
    reasons = {r["code"]: (r["count"], r["points"]) for r in risk["reasons"]}
    assert reasons == {
        "open_critical_alerts": (1, 20),
        "confirmed_abuse": (1, 40),
        "failed_inspections": (1, 20),
        "rectify_inspections": (1, 5),
        "overdue_rectifications": (1, 15),
        "bans": (1, 20),
        "hire_blocked": (1, 10),
        "staffing_out_of_ratio": (1, 10),
        "staffing_shortfall": (3, 6),
    }
    assert risk["score"] == 100 and risk["level"] == "high" and risk["facility_id"] == risky
    assert risk["reasons"][0]["code"] == "confirmed_abuse" and all(r["detail"] for r in risk["reasons"])
    other = await mon.client.get(f"/v1/facilities/{risky}/risk", headers=await mon.headers("other_district"))
    assert other.status_code == 404
    calm = (await mon.client.get(f"/v1/facilities/{quiet}/risk", headers=district)).json()
    assert calm["score"] == 0 and calm["level"] == "none" and calm["reasons"] == []

    [elsewhere] = await add_facilities(mon, 1, district=HUANGPU)
    async with direct(mon, keys) as api:
        ranked = (await api.get("/v1/risk", EDU, params={"district_code": XUHUI})).json()
        assert [r["facility_id"] for r in ranked["items"]] == [risky, short_staffed, quiet]
        assert [r["level"] for r in ranked["items"]] == ["high", "low", "none"]
        walked, cursor = [], None
        while True:
            page = (
                await api.get("/v1/risk", EDU, params={"limit": 1} | ({"cursor": cursor} if cursor else {}))
            ).json()
            walked += [r["facility_id"] for r in page["items"]]
            if not (cursor := page["next_cursor"]):
                break
        assert walked[:2] == [risky, short_staffed] and walked[2:] == sorted([quiet, elsewhere])
        mine = (await api.get("/v1/risk", DISTRICT)).json()
        assert {r["district_code"] for r in mine["items"]} == {XUHUI}
        assert (await api.get("/v1/risk", EDU, params={"cursor": "bm9wZQ"})).status_code == 422

        year = today.year
        figures = (await api.get("/v1/monitoring/figures", EDU, params={"year": year})).json()
        [xuhui] = [d for d in figures["districts"] if d["district_code"] == XUHUI]
        assert xuhui["facilities_approved"] == 3 and xuhui["facilities_inspected_onsite"] == 2
        assert xuhui["onsite_inspection_rate"] == round(2 / 3, 4)
        assert xuhui["incidents"] == {"abuse": {"confirmed": 1}, "injury": {"unfounded": 1, "reported": 1}}
        assert xuhui["alerts_by_severity"] == {"critical": 2, "high": 2}
        assert figures["city"]["facilities_approved"] == 4 and figures["city"]["district_code"] == ""
        own = (await api.get("/v1/monitoring/figures", DISTRICT, params={"year": year})).json()
        assert [d["district_code"] for d in own["districts"]] == [XUHUI]
        assert (await api.get("/v1/monitoring/figures", OPERATOR, params={"year": year})).status_code == 403
        assert (await api.get("/v1/monitoring/figures", EDU, params={"year": "soon"})).status_code == 422


DISTRICTS = [
    "310101",
    "310104",
    "310105",
    "310106",
    "310107",
    "310109",
    "310110",
    "310112",
    "310113",
    "310114",
    "310115",
    "310116",
    "310117",
    "310118",
    "310120",
    "310151",
]


async def test_the_risk_list_ranks_a_district_and_pages_the_city_at_city_scale(
    mon: MonitoringStack, keys: dict[str, Any]
) -> None:
    """~150 facilities in Xuhui, 2,000 in the city, each with a history of alerts, incidents and
    inspections."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    today = now.date()
    placed = [XUHUI] * 150 + [rng.choice([d for d in DISTRICTS if d != XUHUI]) for _ in range(1850)]
    facilities = [
        {
            "id": str(uuid.uuid4()),
            "name": f"托育点 {n}",
            "kind": "community_point",
            "district_code": district,
            "town_code": f"{district}001",
            "status": "approved",
            "opening_hours": [],
            "enrolled": 0,
            "staffing_in_ratio": rng.random() > 0.2,
            "staffing_shortfall": rng.randint(0, 3),
            "version": 1,
            "source_event_at": now,
            "updated_at": now,
        }
        for n, district in enumerate(placed)
    ]
    await seed(mon, Facility, facilities)
    alerts, incidents, inspections = [], [], []
    for f in facilities:
        fid, district = f["id"], f["district_code"]
        for _ in range(rng.randint(0, 4)):
            kind = rng.choice(["abuse_suspected", "fall", "ban_issued", "hire_blocked", "camera_offline"])
            severity = "critical" if kind == "abuse_suspected" else "high"
            status = rng.choice(["open", "acknowledged", "resolved"])
            alerts.append(
                alert_row(
                    fid, district, kind, severity, status=status, at=now - timedelta(days=rng.randint(0, 500))
                )
            )
        for _ in range(rng.randint(0, 2)):
            incidents.append(
                incident_row(
                    fid,
                    district,
                    rng.choice(["abuse", "injury", "other"]),
                    rng.choice(["reported", "confirmed", "unfounded"]),
                    at=now - timedelta(days=rng.randint(0, 500)),
                )
            )
        for _ in range(rng.randint(0, 2)):
            outcome = rng.choice(["pass", "rectify", "fail"])
            rectify_by = today + timedelta(days=rng.randint(-30, 30)) if outcome != "pass" else None
            inspections.append(
                inspection_row(
                    fid, district, outcome, today - timedelta(days=rng.randint(0, 500)), rectify_by
                )
            )
    await seed(mon, Alert, alerts)
    await seed(mon, Incident, incidents)
    await seed(mon, Inspection, inspections)

    async with direct(mon, keys) as api:

        async def listed(params: dict[str, Any]) -> Any:
            response = await api.get("/v1/risk", EDU, params=params)
            assert response.status_code == 200, response.text
            return response.json()

        page = await listed({"district_code": XUHUI, "limit": 200})
        assert len(page["items"]) == 150
        scores = [r["score"] for r in page["items"]]
        assert scores == sorted(scores, reverse=True) and scores[0] > 0
        city = await listed({"limit": 50})
        assert len(city["items"]) == 50 and city["next_cursor"]
