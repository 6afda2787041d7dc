"""Subsidies (综合奖补) through the gateway on both databases: FINANCE's rates, a month's list computed
from the records as they stood at the month's close (the same answer when recomputed after current
data changed), EDU's review, FINANCE's publication and payments, who sees which lines, the list as a
file, and later corrections as adjustment lines on the next list."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import update

from services.registry.models import (
    CreditEntry,
    EnrolmentFiling,
    Facility,
    FacilityStatusChange,
    FacilityVersion,
    FeeSchedule,
    SubsidyRate,
)
from services.registry.service.subsidies import closes_at, last_day, month_start
from shared.clock import shanghai_today
from tests.registry.conftest import Registry
from tests.registry.test_quality_credit import handled, publish

DISTRICT = "310104"
FINANCE = {
    "name": "市财政局",
    "kind": "bureau",
    "bureau": "FINANCE",
    "scopes": ["registry:read", "registry:review"],
}


def months_back(count: int) -> str:
    today = shanghai_today()
    index = today.year * 12 + today.month - 1 - count
    return f"{index // 12}-{index % 12 + 1:02d}"


async def backdate(registry: Registry, facility_ids: list[str], to: datetime) -> None:
    """The facilities' history as if recorded at `to`: the tests make facilities today, and a list
    reads what was recorded before its month's close."""
    async with registry.stack.registry.state.sessionmaker() as session, session.begin():
        ids = Facility.id.in_(facility_ids)
        await session.execute(update(Facility).where(ids).values(submitted_at=to, approved_at=to))
        # The application first, its approval a minute later: their order stays.
        for submitted, at in ((True, to), (False, to + timedelta(minutes=1))):
            await session.execute(
                update(FacilityStatusChange)
                .where(
                    FacilityStatusChange.facility_id.in_(facility_ids),
                    (FacilityStatusChange.to_status == "submitted") == submitted,
                )
                .values(changed_at=at)
            )
        await session.execute(
            update(FacilityVersion).where(FacilityVersion.facility_id.in_(facility_ids)).values(changed_at=to)
        )
        await session.execute(
            update(SubsidyRate).where(SubsidyRate.district_code == DISTRICT).values(set_at=to)
        )
        await session.execute(
            update(FeeSchedule)
            .where(FeeSchedule.facility_id.in_(facility_ids), FeeSchedule.published_at.is_not(None))
            .values(recorded_at=to, published_at=to)
        )


async def refile(registry: Registry, facility_id: str, month: str, at: datetime) -> None:
    """The facility's enrolment reports for `month` made since the last backdating, dated `at`."""
    async with registry.stack.registry.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(EnrolmentFiling)
            .where(
                EnrolmentFiling.facility_id == facility_id,
                EnrolmentFiling.month == month,
                EnrolmentFiling.reported_at > at,
            )
            .values(reported_at=at)
        )


async def licensed(
    registry: Registry, who: str, name: str, *, inclusive: bool = True, fees_from: date
) -> str:
    facility = await registry.approved(who, name=name, inclusive=inclusive)
    fees = await registry.client.post(
        f"/v1/facilities/{facility['id']}/fees",
        json={
            "effective_from": str(fees_from),
            "fees": [{"age_class": "toddler", "service_mode": "full_day", "amount": "2800.00"}],
        },
        headers=registry[who],
    )
    assert fees.status_code == 201, fees.text
    return str(facility["id"])


async def report(registry: Registry, who: str, facility_id: str, month: str, **children: int) -> None:
    body = {"month": month, "infant": 0, "toddler": 0, "preschool": 0, **children}
    response = await registry.client.put(
        f"/v1/facilities/{facility_id}/enrolment", json=body, headers=registry[who]
    )
    assert response.status_code == 200, response.text


async def lines_of(registry: Registry, month: str, who: dict[str, str]) -> list[dict[str, Any]]:
    response = await registry.client.get(
        f"/v1/subsidy-lists/{month}/{DISTRICT}/lines", params={"limit": 500}, headers=who
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


def by_facility(lines: list[dict[str, Any]], kind: str = "entitlement") -> dict[str, dict[str, Any]]:
    return {line["facility_id"]: line for line in lines if line["kind"] == kind}


def verdicts(lines: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            line["facility_id"],
            line["kind"],
            line["for_month"],
            line["places"],
            line["amount_fen"],
            tuple(line["refusals"]),
            tuple((c["code"], c["passed"], c["en"]) for c in line["checks"]),
        )
        for line in lines
    )


async def test_a_month_computed_reviewed_published_paid_and_corrected_on_the_next_list(
    registry: Registry,
) -> None:
    finance = await registry.stack.headers_for(**FINANCE)
    client = registry.client
    month, following = months_back(3), months_back(2)
    rate_fen = 50_000
    for year in sorted({int(month[:4]), int(following[:4])}):
        refused = await client.put(
            f"/v1/subsidy-rates/{year}/{DISTRICT}", json={"amount_fen": rate_fen}, headers=registry["EDU"]
        )
        assert refused.status_code == 403
        rate = await client.put(
            f"/v1/subsidy-rates/{year}/{DISTRICT}",
            json={"amount_fen": rate_fen, "note": "沪财教"},
            headers=finance,
        )
        assert rate.status_code == 200, rate.text
    bad = await client.put(
        f"/v1/subsidy-rates/{month[:4]}/{DISTRICT}", json={"amount_fen": 1.5}, headers=finance
    )
    assert bad.status_code == 422 and "amount_fen" in bad.text

    start = month_start(month)
    fees_from = start.date()
    counted = await licensed(registry, "operator", "天平托育点", fees_from=fees_from)
    not_inclusive = await licensed(
        registry, "other_operator", "枫林托育园", inclusive=False, fees_from=fees_from
    )
    unreported = await licensed(registry, "operator", "湖南托育点", fees_from=fees_from)
    abusive = await licensed(registry, "operator", "斜土托育点", fees_from=fees_from)
    for facility_id, children in (
        (counted, {"infant": 3, "toddler": 8}),
        (not_inclusive, {"toddler": 5}),
        (abusive, {"toddler": 4}),
    ):
        await report(
            registry,
            "operator" if facility_id != not_inclusive else "other_operator",
            facility_id,
            month,
            **children,
        )
    await backdate(registry, [counted, not_inclusive, unreported, abusive], start + timedelta(hours=1))
    for facility_id in (counted, not_inclusive, abusive):
        await refile(registry, facility_id, month, start + timedelta(days=20))

    # A month not yet closed has no list.
    open_month = months_back(0)
    too_early = await client.post(f"/v1/subsidy-lists/{open_month}/{DISTRICT}/compute", headers=finance)
    assert too_early.status_code == 409

    computed = await client.post(
        f"/v1/subsidy-lists/{month}/{DISTRICT}/compute", headers=registry["district"]
    )
    assert computed.status_code == 200, computed.text
    first = computed.json()
    assert first["status"] == "draft" and first["rate_fen"] == rate_fen
    lines = await lines_of(registry, month, finance)
    entitled = by_facility(lines)
    assert set(entitled) == {counted, not_inclusive, unreported, abusive}
    assert entitled[counted]["eligible"], entitled[counted]
    assert entitled[counted]["places"] == 11
    assert entitled[counted]["amount_fen"] == 11 * rate_fen
    assert [c["code"] for c in entitled[counted]["checks"]] == [
        "licensed",
        "inclusive",
        "fees_within_cap",
        "enrolment_reported",
        "no_confirmed_abuse",
        "places_counted",
    ]
    assert all(c["zh"] and c["en"] for c in entitled[counted]["checks"])
    assert entitled[not_inclusive]["refusals"] == ["not_inclusive"]
    assert entitled[not_inclusive]["amount_fen"] == 0
    assert entitled[unreported]["refusals"] == ["enrolment_not_reported"]
    assert entitled[abusive]["eligible"], entitled[abusive]
    assert entitled[abusive]["amount_fen"] == 4 * rate_fen
    assert first["total_fen"] == 15 * rate_fen and first["eligible_lines"] == 2 and first["places"] == 15

    # Current data changes after the close: a corrected report, a suspension. Recomputing reads the
    # month as it stood at its close, so the answer is the same.
    await report(registry, "operator", counted, month, infant=1, toddler=2)
    suspended = await client.post(
        f"/v1/facilities/{counted}/status",
        json={"status": "suspended", "reason": "整改"},
        headers=registry["EDU"],
    )
    assert suspended.status_code == 200, suspended.text
    again = await client.post(f"/v1/subsidy-lists/{month}/{DISTRICT}/compute", headers=finance)
    assert again.status_code == 200, again.text
    assert again.json()["total_fen"] == first["total_fen"]
    recomputed = await lines_of(registry, month, finance)
    assert verdicts(recomputed) == verdicts(lines)
    entitled = by_facility(recomputed)

    # Who sees what: an operator its own facilities' lines, another district nothing.
    own = await lines_of(registry, month, registry["operator"])
    assert {line["facility_id"] for line in own} == {counted, unreported, abusive}
    assert {line["facility_id"] for line in await lines_of(registry, month, registry["other_operator"])} == {
        not_inclusive
    }
    assert (
        await client.get(f"/v1/subsidy-lists/{month}/{DISTRICT}", headers=registry["operator"])
    ).status_code == 404
    assert (
        await client.get(f"/v1/subsidy-lists/{month}/{DISTRICT}", headers=registry["other_district"])
    ).status_code == 404
    others = await client.get(
        f"/v1/subsidy-lists/{month}/{DISTRICT}/lines", headers=registry["other_district"]
    )
    assert others.status_code == 404
    listed = await client.get("/v1/subsidy-lists", params={"month": month}, headers=registry["district"])
    assert [item["district_code"] for item in listed.json()["items"]] == [DISTRICT]

    # EDU reviews, FINANCE publishes; neither may do the other's part.
    assert (
        await client.post(f"/v1/subsidy-lists/{month}/{DISTRICT}/publish", headers=finance)
    ).status_code == 409  # not approved yet
    assert (
        await client.post(
            f"/v1/subsidy-lists/{month}/{DISTRICT}/review", json={"decision": "approve"}, headers=finance
        )
    ).status_code == 403
    review = await client.post(
        f"/v1/subsidy-lists/{month}/{DISTRICT}/review",
        json={"decision": "approve", "note": "已核对"},
        headers=registry["EDU"],
    )
    assert review.status_code == 200 and review.json()["status"] == "approved"
    assert (
        await client.post(f"/v1/subsidy-lists/{month}/{DISTRICT}/publish", headers=registry["EDU"])
    ).status_code == 403
    published = await client.post(f"/v1/subsidy-lists/{month}/{DISTRICT}/publish", headers=finance)
    assert published.status_code == 200 and published.json()["status"] == "published"
    assert (
        await client.post(f"/v1/subsidy-lists/{month}/{DISTRICT}/compute", headers=finance)
    ).status_code == 409

    # Payments, per line, by FINANCE.
    line_id = entitled[counted]["id"]
    payment_path = f"/v1/subsidy-lists/{month}/{DISTRICT}/lines/{line_id}/payment"
    payment = {"paid_fen": 11 * rate_fen, "paid_on": str(shanghai_today()), "reference": "SHCZ-0001"}
    assert (await client.put(payment_path, json=payment, headers=registry["operator"])).status_code == 403
    paid = await client.put(payment_path, json=payment, headers=finance)
    assert paid.status_code == 200, paid.text
    assert paid.json()["paid_fen"] == 11 * rate_fen and paid.json()["payment_reference"] == "SHCZ-0001"
    assert (await client.put(payment_path, json=payment, headers=finance)).status_code == 200
    different = await client.put(payment_path, json={**payment, "reference": "SHCZ-0002"}, headers=finance)
    assert different.status_code == 409
    wrong = await client.put(
        payment_path, json={"paid_fen": -1, "paid_on": "soon", "reference": ""}, headers=finance
    )
    assert wrong.status_code == 422
    assert {e["field"] for e in wrong.json()["errors"]} >= {"paid_fen", "paid_on", "reference"}

    # The published list as a file.
    exported = await client.get(
        f"/v1/subsidy-lists/{month}/{DISTRICT}/lines", headers={**finance, "Accept": "text/csv"}
    )
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert {row["facility_name"] for row in rows} == {"天平托育点", "枫林托育园", "湖南托育点", "斜土托育点"}
    assert next(r for r in rows if r["facility_id"] == counted)["amount_fen"] == str(11 * rate_fen)
    assert "非普惠" in next(r for r in rows if r["facility_id"] == not_inclusive)["reasons_zh"]

    # Later corrections of the published month, recorded before the next month's close: the
    # corrected report (1 + 2 places) and an abuse finding confirmed at another facility.
    month_close = closes_at(month, registry.stack.registry.state.settings)
    await refile(registry, counted, month, month_close + timedelta(days=1))
    decided_at = month_start(following) - timedelta(days=2)
    await publish(
        registry,
        "cradle.monitoring.incident.confirmed",
        {
            "incident_id": str(uuid.uuid4()),
            "facility_id": abusive,
            "district_code": DISTRICT,
            "category": "abuse",
            "decision_ref": "徐教处〔2026〕7号",
            "decided_at": decided_at.isoformat(),
            "abuser_practitioner_ids": [],
            "responsible_manager_ids": [],
        },
    )
    await handled(registry, 1)
    async with registry.stack.registry.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(CreditEntry)
            .where(CreditEntry.facility_id == abusive)
            .values(recorded_at=month_close + timedelta(days=2))
        )
    # The suspension of `counted` was recorded now: move it into the following month so it is refused then.
    await backdate_status(registry, counted, month_start(following) + timedelta(days=3))
    for facility_id in (counted, abusive):
        await report(registry, "operator", facility_id, following, toddler=6)
        await refile(registry, facility_id, following, month_start(following) + timedelta(days=5))
    published_lines = verdicts(await lines_of(registry, month, finance))

    nxt = await client.post(f"/v1/subsidy-lists/{following}/{DISTRICT}/compute", headers=finance)
    assert nxt.status_code == 200, nxt.text
    next_lines = await lines_of(registry, following, finance)
    adjustments = by_facility(next_lines, "adjustment")
    assert set(adjustments) == {counted, abusive}
    assert adjustments[counted]["for_month"] == month
    assert adjustments[counted]["places"] == 3 and adjustments[counted]["amount_fen"] == (3 - 11) * rate_fen
    assert adjustments[abusive]["amount_fen"] == -4 * rate_fen
    assert adjustments[abusive]["refusals"] == ["confirmed_abuse"]
    following_entitled = by_facility(next_lines)
    assert following_entitled[counted]["refusals"] == ["not_operating"]
    if following[:4] == month[:4]:  # a finding bars its own year only
        assert following_entitled[abusive]["refusals"] == ["confirmed_abuse"]
        assert nxt.json()["total_fen"] == (3 - 11 - 4) * rate_fen
    # The published month itself is unchanged.
    assert verdicts(await lines_of(registry, month, finance)) == published_lines
    assert (await client.get(f"/v1/subsidy-lists/{month}/{DISTRICT}", headers=finance)).json()[
        "total_fen"
    ] == 15 * rate_fen

    events = {
        kind: await registry.events(f"cradle.registry.{kind}")
        for kind in (
            "subsidy_list.computed",
            "subsidy_list.reviewed",
            "subsidy_list.published",
            "subsidy_payment.recorded",
        )
    }
    assert [e["data"]["month"] for e in events["subsidy_list.computed"]] == [month, month, following]
    assert events["subsidy_list.reviewed"][0]["data"]["decision"] == "approve"
    assert events["subsidy_list.published"][0]["data"]["total_fen"] == 15 * rate_fen
    assert events["subsidy_payment.recorded"][0]["data"]["facility_id"] == counted


async def backdate_status(registry: Registry, facility_id: str, to: datetime) -> None:
    async with registry.stack.registry.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(FacilityStatusChange)
            .where(
                FacilityStatusChange.facility_id == facility_id, FacilityStatusChange.to_status == "suspended"
            )
            .values(changed_at=to)
        )


async def test_fees_disclosed_after_the_close_leave_the_month_and_adjust_the_next_list(
    registry: Registry,
) -> None:
    """A facility that disclosed no fees by its month's close is refused for fees; a schedule it
    discloses later, dated back into the month, does not change that month's list when recomputed,
    and becomes an adjustment line on the next list once recorded before that list's close."""
    finance = await registry.stack.headers_for(**FINANCE)
    client = registry.client
    month, following = months_back(3), months_back(2)
    rate_fen = 40_000
    for year in sorted({int(month[:4]), int(following[:4])}):
        rate = await client.put(
            f"/v1/subsidy-rates/{year}/{DISTRICT}", json={"amount_fen": rate_fen}, headers=finance
        )
        assert rate.status_code == 200, rate.text
    start = month_start(month)
    disclosed = await licensed(registry, "operator", "天平托育点", fees_from=start.date())
    late = str((await registry.approved("operator", name="龙华托育点"))["id"])
    for facility_id in (disclosed, late):
        await report(registry, "operator", facility_id, month, toddler=6)
    await backdate(registry, [disclosed, late], start + timedelta(hours=1))
    for facility_id in (disclosed, late):
        await refile(registry, facility_id, month, start + timedelta(days=20))

    path = f"/v1/subsidy-lists/{month}/{DISTRICT}"
    assert (await client.post(f"{path}/compute", headers=finance)).status_code == 200
    first = await lines_of(registry, month, finance)
    entitled = by_facility(first)
    assert entitled[disclosed]["eligible"] and entitled[disclosed]["amount_fen"] == 6 * rate_fen
    assert entitled[late]["refusals"] == ["fees_above_cap"]
    [fee_check] = [c for c in entitled[late]["checks"] if c["code"] == "fees_within_cap"]
    assert fee_check["en"] == f"No fee schedule disclosed in force on {last_day(month)}", fee_check
    [kept] = [c for c in entitled[disclosed]["checks"] if c["code"] == "fees_within_cap"]
    assert "2800.00" in kept["en"] and "2800.00" in kept["zh"]

    # After the close the facility discloses a schedule in force since the month began: the month,
    # recomputed, reads the records as they stood at its close.
    fees = await client.post(
        f"/v1/facilities/{late}/fees",
        json={
            "effective_from": str(start.date()),
            "fees": [{"age_class": "toddler", "service_mode": "full_day", "amount": "2600.00"}],
        },
        headers=registry["operator"],
    )
    assert fees.status_code == 201 and fees.json()["status"] == "published", fees.text
    assert (await client.post(f"{path}/compute", headers=finance)).status_code == 200
    assert verdicts(await lines_of(registry, month, finance)) == verdicts(first)
    approved = await client.post(f"{path}/review", json={"decision": "approve"}, headers=registry["EDU"])
    assert approved.status_code == 200, approved.text
    assert (await client.post(f"{path}/publish", headers=finance)).status_code == 200

    # Recorded before the next month's close, the disclosure is an adjustment on the next list.
    settings = registry.stack.registry.state.settings
    async with registry.stack.registry.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(FeeSchedule)
            .where(FeeSchedule.facility_id == late)
            .values(
                recorded_at=closes_at(month, settings) + timedelta(days=1),
                published_at=closes_at(month, settings) + timedelta(days=1),
            )
        )
    for facility_id in (disclosed, late):
        await report(registry, "operator", facility_id, following, toddler=6)
        await refile(registry, facility_id, following, month_start(following) + timedelta(days=5))
    nxt = await client.post(f"/v1/subsidy-lists/{following}/{DISTRICT}/compute", headers=finance)
    assert nxt.status_code == 200, nxt.text
    next_lines = await lines_of(registry, following, finance)
    [adjustment] = [line for line in next_lines if line["kind"] == "adjustment"]
    assert (adjustment["facility_id"], adjustment["for_month"]) == (late, month)
    assert adjustment["places"] == 6 and adjustment["amount_fen"] == 6 * rate_fen
    assert all(line["eligible"] for line in by_facility(next_lines).values())
    assert verdicts(await lines_of(registry, month, finance)) == verdicts(first)

    # The facility's lines across lists, the latest list's first (as its profile shows them).
    across = await client.get(
        "/v1/subsidy-lines",
        params={"facility_id": late, "newest_first": "true", "limit": 2},
        headers=registry["operator"],
    )
    assert across.status_code == 200, across.text
    page = across.json()
    assert [(line["month"], line["kind"]) for line in page["items"]] == [
        (following, "entitlement"),
        (following, "adjustment"),
    ]
    rest = await client.get(
        "/v1/subsidy-lines",
        params={"facility_id": late, "newest_first": "true", "cursor": page["next_cursor"]},
        headers=registry["operator"],
    )
    assert [(line["month"], line["kind"]) for line in rest.json()["items"]] == [(month, "entitlement")]
    oldest_first = await client.get(
        "/v1/subsidy-lines", params={"facility_id": late}, headers=registry["operator"]
    )
    assert [line["month"] for line in oldest_first.json()["items"]] == [month, following, following]


def test_a_months_last_day_is_its_last_calendar_day() -> None:
    """The fee condition reads the schedule in force on this day: the month's own last day in
    Shanghai, not the day before (its end is 16:00 UTC of that day)."""
    assert last_day("2026-10") == date(2026, 10, 31)
    assert last_day("2026-02") == date(2026, 2, 28) and last_day("2028-02") == date(2028, 2, 29)
    assert last_day("2026-12") == date(2026, 12, 31)


async def test_lists_refuse_what_they_cannot_compute(registry: Registry) -> None:
    finance = await registry.stack.headers_for(**FINANCE)
    month = months_back(4)
    # No rate before the month closed.
    missing = await registry.client.post(f"/v1/subsidy-lists/{month}/{DISTRICT}/compute", headers=finance)
    assert missing.status_code == 409 and "rate" in missing.json()["detail"]
    # Not a district, not a month, not the caller's.
    assert (
        await registry.client.post(f"/v1/subsidy-lists/{month}/999999/compute", headers=finance)
    ).status_code == 422
    # A month outside the years every year parameter takes (a month's end would leave four digits).
    for not_a_month in ("2026-13", "0000-02", "9999-12", "١٢٣٤-01"):
        refused = await registry.client.post(
            f"/v1/subsidy-lists/{not_a_month}/{DISTRICT}/compute", headers=finance
        )
        assert refused.status_code == 422, not_a_month
    assert (
        await registry.client.post(
            f"/v1/subsidy-lists/{month}/{DISTRICT}/compute", headers=registry["other_district"]
        )
    ).status_code == 403
    assert (
        await registry.client.post(
            f"/v1/subsidy-lists/{month}/{DISTRICT}/compute", headers=registry["operator"]
        )
    ).status_code == 403
    history = await registry.client.get(
        f"/v1/subsidy-rates/{month[:4]}/{DISTRICT}", headers=registry["district"]
    )
    assert history.status_code == 200 and history.json()["current"] is None


async def test_a_returned_list_is_recomputed_and_lists_go_in_month_order(registry: Registry) -> None:
    finance = await registry.stack.headers_for(**FINANCE)
    client = registry.client
    month, following = months_back(4), months_back(3)
    for year in sorted({int(month[:4]), int(following[:4])}):
        rate = await client.put(
            f"/v1/subsidy-rates/{year}/{DISTRICT}", json={"amount_fen": 30_000}, headers=finance
        )
        assert rate.status_code == 200, rate.text
    await backdate(registry, [], month_start(month))
    path = f"/v1/subsidy-lists/{month}/{DISTRICT}"

    computed = await client.post(f"{path}/compute", headers=registry["district"])
    assert computed.status_code == 200, computed.text
    assert computed.json()["line_count"] == 0 and computed.json()["total_fen"] == 0
    # The next month waits until this one is published.
    early = await client.post(f"/v1/subsidy-lists/{following}/{DISTRICT}/compute", headers=finance)
    assert early.status_code == 409 and early.json()["type"] == "/problems/subsidy-list-order"

    # Another district's office may not review it; its own may, with the list's ETag.
    returned_by_other = await client.post(
        f"{path}/review", json={"decision": "return", "note": "核对"}, headers=registry["other_district"]
    )
    assert returned_by_other.status_code == 404
    stale = await client.post(
        f"{path}/review", json={"decision": "return"}, headers={**registry["district"], "If-Match": '"999"'}
    )
    assert stale.status_code == 412
    returned = await client.post(
        f"{path}/review",
        json={"decision": "return", "note": "请核对在托人数"},
        headers={**registry["district"], "If-Match": computed.headers["ETag"]},
    )
    assert returned.status_code == 200 and returned.json()["status"] == "returned"
    assert returned.json()["review_note"] == "请核对在托人数"
    assert (await client.post(f"{path}/publish", headers=finance)).status_code == 409
    again = await client.post(f"{path}/compute", headers=finance)
    assert again.status_code == 200 and again.json()["status"] == "draft"
    assert again.json()["version"] > returned.json()["version"]
    bad = await client.post(f"{path}/review", json={"decision": "maybe", "extra": 1}, headers=registry["EDU"])
    assert bad.status_code == 422 and {e["field"] for e in bad.json()["errors"]} >= {"decision", "extra"}
    assert (
        await client.post(f"{path}/review", json={"decision": "approve"}, headers=registry["EDU"])
    ).status_code == 200
    assert (await client.post(f"{path}/publish", headers=finance)).status_code == 200
    # Now the next month; and no going back to an earlier one.
    assert (
        await client.post(f"/v1/subsidy-lists/{following}/{DISTRICT}/compute", headers=finance)
    ).status_code == 200
    back = await client.post(f"/v1/subsidy-lists/{months_back(5)}/{DISTRICT}/compute", headers=finance)
    assert back.status_code == 409

    rates = await client.get(f"/v1/subsidy-rates/{month[:4]}", headers=registry["operator"])
    assert [r["district_code"] for r in rates.json()] == [DISTRICT]
