"""`POST /v1/ban-checks/batch` through the gateway: every number answered or rejected by index, each
one audited, nothing raw in the reply, the scope as the single check's."""

from __future__ import annotations

from services.workforce.models import BanCheck
from services.workforce.schemas import MAX_BATCH_CHECKS
from shared.pii import mask
from tests.workforce.conftest import WorkforceStack, new_id_number

BATCH = "/v1/ban-checks/batch"


async def hrss_bureau(wf: WorkforceStack) -> dict[str, str]:
    return await wf.stack.headers_for(
        name="市人社局", kind="bureau", bureau="HRSS", scopes=["workforce:read"]
    )


async def test_a_batch_answers_each_number_by_index_and_audits_each(wf: WorkforceStack) -> None:
    banned = new_id_number()
    ban = (await wf.ban(banned)).json()
    clean = [new_id_number() for _ in range(3)]
    numbers = [clean[0], banned, "11010519491231002x", clean[1], banned, "not a number", clean[2]]
    hrss = await wf.stack.headers_for(
        name="市人社局", kind="bureau", bureau="HRSS", scopes=["workforce:read"]
    )
    response = await wf.gateway.post(
        BATCH, json={"id_numbers": numbers}, headers={**hrss, "X-Purpose": "annual re-check"}
    )
    assert response.status_code == 200, response.text
    reply = response.json()
    assert [(i["index"], i["banned"]) for i in reply["items"]] == [
        (0, False),
        (1, True),
        (3, False),
        (4, True),
        (6, False),
    ]
    assert [b["ban_id"] for b in reply["items"][1]["bans"]] == [ban["id"]]
    assert reply["items"][0]["id_number_masked"] == mask(clean[0])
    assert [(r["index"], r["errors"][0]["field"]) for r in reply["rejected"]] == [
        (2, "id_numbers[2]"),
        (5, "id_numbers[5]"),
    ]
    assert "upper-case X" in reply["rejected"][0]["errors"][0]["message"]
    assert not any(number in response.text for number in [banned, *clean])

    audits = await wf.rows(BanCheck)
    assert len(audits) == len(numbers)
    assert sorted(a.outcome for a in audits) == sorted(
        ["not_banned", "banned", "invalid", "not_banned", "banned", "invalid", "not_banned"]
    )
    assert {a.purpose for a in audits} == {"annual re-check"}
    assert all(a.client_id == audits[0].client_id and a.client_kind == "bureau" for a in audits)
    assert len({a.id for a in audits}) == len(numbers)
    assert all(banned not in (a.id_hash or "") for a in audits)


async def test_a_batch_without_the_scope_is_refused_and_every_number_audited(wf: WorkforceStack) -> None:
    operator = await wf.stack.headers_for(name="某托育机构", kind="operator", scopes=["workforce:write"])
    numbers = [new_id_number() for _ in range(4)]
    response = await wf.gateway.post(BATCH, json={"id_numbers": numbers}, headers=operator)
    assert response.status_code == 403
    assert [a.outcome for a in await wf.rows(BanCheck)] == ["refused"] * 4
    # Without a workforce scope at all, the gateway refuses before the service (and records it itself).
    outsider = await wf.stack.headers_for(
        name="某区", kind="district", district_code="310104", scopes=["registry:read"]
    )
    assert (await wf.gateway.post(BATCH, json={"id_numbers": numbers}, headers=outsider)).status_code == 403


async def test_more_than_a_thousand_numbers_or_none_is_a_422_naming_the_field(wf: WorkforceStack) -> None:
    hrss = await wf.stack.headers_for(
        name="市人社局", kind="bureau", bureau="HRSS", scopes=["workforce:read"]
    )
    for numbers in ([new_id_number()] * (MAX_BATCH_CHECKS + 1), []):
        response = await wf.gateway.post(BATCH, json={"id_numbers": numbers}, headers=hrss)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "id_numbers"
    assert await wf.table_count(BanCheck) == 0


async def test_a_full_batch_is_one_call(wf: WorkforceStack) -> None:
    banned = new_id_number()
    await wf.ban(banned)
    numbers = [new_id_number() for _ in range(MAX_BATCH_CHECKS - 1)] + [banned]
    hrss = await wf.stack.headers_for(
        name="市人社局", kind="bureau", bureau="HRSS", scopes=["workforce:read"]
    )
    response = await wf.gateway.post(BATCH, json={"id_numbers": numbers}, headers=hrss)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert len(items) == MAX_BATCH_CHECKS and [i["index"] for i in items if i["banned"]] == [
        MAX_BATCH_CHECKS - 1
    ]
    assert await wf.table_count(BanCheck) == MAX_BATCH_CHECKS
