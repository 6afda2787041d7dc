"""Births per district and year (T19's denominator): the 2020 census's age-0 population seeded by the
migration, HEALTH's records through the API, and the handbook's coverage in the figures."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from services.guidance.models import outbox
from shared.identity import ClientKind, Identity
from tests.guidance.conftest import XUHUI, Guide

pytestmark = pytest.mark.asyncio(loop_scope="module")
CENSUS_AGE0_2020 = 124_666  # the sum of the districts' age-0 population in shared/data's census columns


def health(guide: Guide, scopes: list[str] | None = None) -> dict[str, str]:
    return guide.sign(
        Identity(
            client_id=f"health-{uuid.uuid4().hex[:6]}",
            kind=ClientKind.bureau,
            bureau="HEALTH",
            scopes=scopes or ["guidance:read", "guidance:write"],
        )
    )


async def coverage(guide: Guide, year: int) -> dict[str, Any]:
    response = await guide.direct.get("/v1/guidance/figures", params={"year": year}, headers=guide.bureau())
    assert response.status_code == 200, response.text
    body = response.json()
    [row] = [i for i in body["indicators"] if i["id"] == "handbook_coverage"]
    return {"row": row, "city": body["city"]}


async def test_births_are_seeded_from_the_census_and_recorded_by_health(guide: Guide) -> None:
    seeded = await guide.direct.get("/v1/guidance/births", params={"year": 2020}, headers=guide.bureau())
    assert seeded.status_code == 200, seeded.text
    rows = seeded.json()
    assert len(rows) == 16 and sum(r["births"] for r in rows) == CENSUS_AGE0_2020
    assert next(r for r in rows if r["district_code"] == XUHUI)["births"] == 4506

    year = datetime.now(UTC).year
    path = f"/v1/guidance/births/{XUHUI}/{year}"
    body = {"births": 4380, "source": "出生医学登记"}
    assert (await guide.direct.put(path, json=body, headers=guide.bureau())).status_code == 403
    assert (await guide.direct.put(path, json=body, headers=guide.district())).status_code == 403
    assert (
        await guide.direct.put(path, json=body, headers=health(guide, ["guidance:read"]))
    ).status_code == 403
    recorded = await guide.direct.put(path, json=body, headers=health(guide))
    assert recorded.status_code == 200, recorded.text
    corrected = await guide.direct.put(path, json={**body, "births": 4400}, headers=health(guide))
    assert corrected.json()["births"] == 4400
    listed = await guide.direct.get(
        "/v1/guidance/births", params={"year": year, "district_code": XUHUI}, headers=guide.district()
    )
    assert [r["births"] for r in listed.json()] == [4400]
    async with guide.app.state.sessionmaker() as session:
        payloads = (await session.execute(select(outbox.c.payload).order_by(outbox.c.seq))).scalars().all()
    recorded = [json.loads(p)["data"] for p in payloads if '"cradle.guidance.births.recorded"' in p]
    assert [(r["district_code"], r["year"], r["births"]) for r in recorded[-2:]] == [
        (XUHUI, year, 4380),
        (XUHUI, year, 4400),
    ]

    bad = await guide.direct.put(
        "/v1/guidance/births/31010/1999", json={"births": -1, "source": ""}, headers=health(guide)
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} >= {"district_code", "year", "births"}
    unknown = await guide.direct.put("/v1/guidance/births/999999/2026", json=body, headers=health(guide))
    assert unknown.status_code == 404


async def test_handbook_coverage_is_the_years_handbook_families_over_its_births(guide: Guide) -> None:
    year = datetime.now(UTC).year
    await guide.direct.put(
        f"/v1/guidance/births/{XUHUI}/{year}",
        json={"births": 4400, "source": "出生医学登记"},
        headers=health(guide),
    )
    before = await coverage(guide, year)
    for handbook in (True, True, False):
        await guide.family(newborn=True, in_need=False, has_handbook=handbook)
    after = await coverage(guide, year)
    assert after["row"]["numerator"] - before["row"]["numerator"] == 2
    # This year's births in Xuhui, the census's 2020 figure elsewhere: the years used are named.
    assert after["row"]["denominator"] == CENSUS_AGE0_2020 - 4506 + 4400
    assert after["city"]["births_years"] == [2020, year]
    # Before any record (2019), no district has a births figure: no denominator, no rate.
    early = await coverage(guide, 2019)
    assert early["row"]["denominator"] is None and early["city"]["births_years"] == []
