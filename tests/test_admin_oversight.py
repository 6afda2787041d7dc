"""Separation of duties as one rule (`Identity.has_scope`): the admin client administers clients and
oversees. Through the gateway it lists clients and reads facilities, practitioners (masked, whatever
purpose it gives) and the audit log; it submits, edits and reports for no facility and registers no
practitioner. Each refusal writes nothing; the operator does the same and succeeds."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select

from services.registry.models import Facility
from services.workforce.models import PiiAccess, Practitioner
from tests.conftest import Stack, facility_body
from tests.support import eventually
from tests.workforce.conftest import new_id_number

PURPOSE = {"X-Purpose": "oversight: complaint 2026-017"}


async def count(app: FastAPI, model: Any) -> int:
    async with app.state.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def test_admin_submits_and_edits_no_facility_but_reads_them_the_clients_and_the_audit(
    stack: Stack,
) -> None:
    admin, operator = await stack.admin(), await stack.operator()

    refused = await stack.client.post("/v1/facilities", json=facility_body(), headers=admin)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "registry:write" in refused.json()["detail"]
    assert await count(stack.registry, Facility) == 0

    created = await stack.client.post("/v1/facilities", json=facility_body(), headers=operator)
    assert created.status_code == 201, created.text
    facility = created.json()
    path = f"/v1/facilities/{facility['id']}"

    edit = await stack.client.patch(path, json={"name": "改名托育园"}, headers=admin)
    assert edit.status_code == 403, edit.text
    enrolment = {"month": "2026-01", "infant": 1, "toddler": 2, "preschool": 3}
    report = await stack.client.put(f"{path}/enrolment", json=enrolment, headers=admin)
    assert report.status_code == 403, report.text
    read = await stack.client.get(path, headers=admin)
    assert read.status_code == 200, read.text
    assert read.json()["version"] == facility["version"] and read.json()["name"] == facility["name"]

    listed = await stack.client.get("/v1/facilities", headers=admin)
    assert listed.status_code == 200, listed.text
    assert [f["id"] for f in listed.json()["items"]] == [facility["id"]]

    clients = await stack.client.get("/v1/admin/clients", headers=admin)
    assert clients.status_code == 200, clients.text
    assert "测试托育机构" in {c["name"] for c in clients.json()["items"]}

    async def refusal_audited() -> bool:  # audit records are written in batches, a moment later
        audit = await stack.client.get("/v1/audit", params={"client_id": "admin"}, headers=admin)
        assert audit.status_code == 200, audit.text
        return ("POST", "/v1/facilities", 403) in {
            (r["method"], r["path"], r["status"]) for r in audit.json()["items"]
        }

    await eventually(refusal_audited)

    # The operator, not the admin, holds none of the admin paths.
    assert (await stack.client.get("/v1/admin/clients", headers=operator)).status_code == 403


async def test_admin_registers_no_practitioner_and_reads_them_masked_even_with_a_purpose(
    stack: Stack,
) -> None:
    admin = await stack.admin()
    employer = await stack.headers_for(
        name="托育机构人事", kind="operator", scopes=["workforce:read", "workforce:write"]
    )
    police = await stack.headers_for(
        name="公安局核查", kind="bureau", bureau="POLICE", scopes=["workforce:read", "workforce:pii"]
    )
    id_number = new_id_number()
    body = {"id_number": id_number, "name": "张三", "phone": "13812345678"}

    refused = await stack.client.post("/v1/practitioners", json=body, headers=admin)
    assert refused.status_code == 403, refused.text
    assert await count(stack.workforce, Practitioner) == 0

    created = await stack.client.post("/v1/practitioners", json=body, headers=employer)
    assert created.status_code == 201, created.text
    path = f"/v1/practitioners/{created.json()['id']}"

    read = await stack.client.get(path, headers={**admin, **PURPOSE})
    assert read.status_code == 200, read.text
    assert read.json()["name"] and read.json()["id_number"] != id_number
    assert id_number not in read.text and "13812345678" not in read.text
    assert await count(stack.workforce, PiiAccess) == 0  # nothing was shown, so nothing is recorded

    # The same read by a client granted `workforce:pii` is unmasked, and recorded.
    unmasked = await stack.client.get(path, headers={**police, **PURPOSE})
    assert unmasked.status_code == 200, unmasked.text
    assert unmasked.json()["id_number"] == id_number
    assert await count(stack.workforce, PiiAccess) == 1
