"""Subsidy events reach whom the API shows them to: a district's list to that district (and the
city's bureaus), never an operator or another district; a payment to the facility's operator and
district, never another operator."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from shared.contracts.registry import SubsidyListPublished, SubsidyPaymentRecorded
from tests.delivery.conftest import City
from tests.support import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_list_reaches_its_district_and_a_payment_its_facility_s_operator(city: City) -> None:
    readers = ["registry:read", "registry:write", "events:read", "events:subscribe"]
    mine, stranger = [await city.caller(kind="operator", scopes=readers) for _ in range(2)]
    own = await city.facility(mine)  # Xuhui
    await eventually(lambda: city.recorded_all([own["id"]]))
    urls = {name: city.receiver.endpoint() for name in ("mine", "stranger", "xuhui", "huangpu")}
    types = ["cradle.registry.subsidy_*.*"]
    await city.subscribe(mine, urls["mine"], types)
    await city.subscribe(stranger, urls["stranger"], types)
    await city.subscribe(await city.district("310104"), urls["xuhui"], types)
    await city.subscribe(await city.district("310101"), urls["huangpu"], types)
    now, list_id = datetime.now(UTC), str(uuid.uuid4())
    published = await city.publish(
        "registry",
        SubsidyListPublished(
            list_id=list_id,
            month="2026-10",
            district_code="310104",
            status="published",
            line_count=12,
            eligible_lines=9,
            places=180,
            total_fen=9_000_000,
            version=4,
            occurred_at=now,
        ),
    )
    paid = await city.publish(
        "registry",
        SubsidyPaymentRecorded(
            line_id=str(uuid.uuid4()),
            list_id=list_id,
            month="2026-10",
            for_month="2026-10",
            facility_id=own["id"],
            district_code="310104",
            amount_fen=550_000,
            paid_fen=550_000,
            paid_on=date(2026, 11, 20),
            reference="SHCZ-0001",
            occurred_at=now,
        ),
    )

    def got(name: str) -> set[str]:
        return {e["id"] for e in city.receiver.events_at(urls[name])} & {published.id, paid.id}

    await eventually(lambda: got("xuhui") == {published.id, paid.id})
    await eventually(lambda: got("mine") == {paid.id})
    assert got("huangpu") == set() and got("stranger") == set()
