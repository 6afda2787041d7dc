"""Every call leaves evidence: batched records in a hash chain that shows any removal or change."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from gateway import audit
from gateway.audit import PendingRecord
from gateway.models import AuditChainHead, AuditRecord
from shared.cli.audit import app as audit_cli
from tests.conftest import facility_body
from tests.gateway.conftest import Gateway, start_gateway
from tests.support import DatabaseFactory, eventually


async def records(gw: Gateway) -> list[AuditRecord]:
    await gw.audit_settled()
    async with gw.app.state.sessionmaker() as session:
        return list((await session.execute(select(AuditRecord).order_by(AuditRecord.seq))).scalars())


def verify_with_cli(url: str) -> tuple[int, str]:
    result = CliRunner().invoke(audit_cli, ["verify"], env={"GATEWAY_DATABASE_URL": url})
    return result.exit_code, result.output


async def test_every_call_is_recorded_with_who_why_and_outcome_but_never_the_body(gw: Gateway) -> None:
    headers = await gw.bureau(["registry:read", "registry:write"], bureau="EDU")
    secret_name = "绝密托育点-请勿外传"
    created = await gw.client.post(
        "/v1/facilities",
        json=facility_body(name=secret_name),
        headers={**headers, "X-Purpose": "案件 2026-0042 核查".encode(), "X-Request-Id": "req-audit-1"},
    )
    assert created.status_code == 201
    await gw.client.get("/v1/nowhere", headers=headers)
    await gw.client.get("/v1/divisions")

    rows = await records(gw)
    post = next(r for r in rows if r.request_id == "req-audit-1")
    assert (post.method, post.path, post.status) == ("POST", "/v1/facilities", 201)
    assert post.client_kind == "bureau" and post.bureau == "EDU" and post.client_id.startswith("bureau-")
    assert post.purpose == "案件 2026-0042 核查"
    assert post.duration_us > 0 and post.at.year >= 2026
    assert any(r.path == "/v1/nowhere" and r.status == 404 for r in rows)
    assert any(r.path == "/v1/divisions" and r.client_kind == "public" and r.status == 200 for r in rows)
    assert all(secret_name not in str(r.model_dump()) for r in rows)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))


async def test_the_chain_verifies_and_names_a_deleted_record(gw: Gateway) -> None:
    for _ in range(5):
        await gw.client.get("/v1/divisions")
    rows = await records(gw)
    assert (await audit.verify(gw.app.state.engine)).ok
    assert (await asyncio.to_thread(verify_with_cli, gw.database_url))[0] == 0

    victim = rows[2]
    async with gw.app.state.sessionmaker() as session, session.begin():
        await session.execute(delete(AuditRecord).where(AuditRecord.seq == victim.seq))

    report = await audit.verify(gw.app.state.engine)
    assert not report.ok and report.first_broken_seq == victim.seq
    code, output = await asyncio.to_thread(verify_with_cli, gw.database_url)
    assert code == 1
    assert f"record {victim.seq}" in output and "missing" in output


async def test_an_altered_record_is_named(gw: Gateway) -> None:
    for _ in range(4):
        await gw.client.get("/v1/divisions")
    rows = await records(gw)
    async with gw.app.state.sessionmaker() as session, session.begin():
        await session.execute(update(AuditRecord).where(AuditRecord.seq == rows[1].seq).values(status=403))
    report = await audit.verify(gw.app.state.engine)
    assert not report.ok and report.first_broken_seq == rows[1].seq and "altered" in (report.problem or "")


async def test_a_removed_tail_is_detected(gw: Gateway) -> None:
    for _ in range(3):
        await gw.client.get("/v1/divisions")
    rows = await records(gw)
    async with gw.app.state.sessionmaker() as session, session.begin():
        await session.execute(delete(AuditRecord).where(AuditRecord.seq == rows[-1].seq))
    report = await audit.verify(gw.app.state.engine)
    assert not report.ok and report.first_broken_seq == rows[-1].seq


async def test_replicas_writing_at_once_keep_one_chain(
    gw: Gateway, databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    async with start_gateway(
        databases=databases, keys=keys, services=gw.services, database_url=gw.database_url, audit_batch_size=7
    ) as replica:

        async def burst(g: Gateway) -> None:
            for _ in range(5):
                await asyncio.gather(*(g.client.get("/v1/divisions") for _ in range(8)))

        await asyncio.gather(burst(gw), burst(replica))
        await replica.audit_settled()
    rows = await records(gw)
    assert len(rows) == 80
    assert [r.seq for r in rows] == list(range(1, 81))
    report = await audit.verify(gw.app.state.engine)
    assert report.ok and report.checked == 80


async def test_retention_removes_old_records_and_the_chain_still_verifies(gw: Gateway) -> None:
    engine = gw.app.state.engine
    old = datetime.now(UTC) - timedelta(days=200)
    await audit.append(
        engine,
        [
            PendingRecord(old, "admin", "admin", None, "GET", f"/v1/old/{n}", 200, f"old-{n}", None, 10)
            for n in range(3)
        ],
    )
    await gw.client.get("/v1/divisions")
    await gw.audit_settled()

    removed = await audit.purge(engine, older_than=datetime.now(UTC) - timedelta(days=180))
    assert removed == 3
    rows = await records(gw)
    assert rows and all(not r.path.startswith("/v1/old/") for r in rows)
    assert (await audit.verify(engine)).ok
    async with gw.app.state.sessionmaker() as session:
        head = await session.get(AuditChainHead, 1)
        assert head is not None and head.anchor_seq == 3

    # Removing a record after the anchor is still caught.
    async with gw.app.state.sessionmaker() as session, session.begin():
        await session.execute(delete(AuditRecord).where(AuditRecord.seq == rows[0].seq))
    assert (await audit.verify(engine)).first_broken_seq == rows[0].seq


async def test_pending_records_are_written_on_shutdown(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    async with start_gateway(databases=databases, keys=keys, audit_flush_seconds=10) as g:
        for _ in range(3):
            await g.client.get("/v1/nowhere")
        assert len(g.app.state.runtime.audit.pending) == 3
        engine_url = g.database_url
    code, output = await asyncio.to_thread(verify_with_cli, engine_url)
    assert code == 0 and "3 records" in output


async def test_audit_is_read_with_audit_read_a_page_at_a_time_and_filtered(gw: Gateway) -> None:
    one = await gw.bureau(["registry:read", "audit:read"], bureau="EDU")
    two = await gw.bureau(["registry:read"], bureau="HEALTH")
    since = datetime.now(UTC) - timedelta(seconds=1)
    for _ in range(3):
        await gw.client.get("/v1/facilities", headers=two)
    await gw.client.get("/v1/divisions", headers=two)
    await gw.client.get("/v1/facilities", headers=two)
    await gw.audit_settled()

    listing = await gw.client.get("/v1/audit", params={"path": "/v1/facilities", "limit": 2}, headers=one)
    assert listing.status_code == 200, listing.text
    first = listing.json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    assert first["items"][0]["seq"] > first["items"][1]["seq"]  # newest first
    rest = (
        await gw.client.get(
            "/v1/audit",
            params={"path": "/v1/facilities", "limit": 50, "cursor": first["next_cursor"]},
            headers=one,
        )
    ).json()
    paths = [i["path"] for i in first["items"] + rest["items"]]
    assert len(paths) == 4 and all(p == "/v1/facilities" for p in paths)

    by_two = (await gw.client.get("/v1/audit", params={"client_id": "x"}, headers=one)).json()
    assert by_two["items"] == []
    client_two = first["items"][0]["client_id"]
    filtered = await gw.client.get(
        "/v1/audit", params={"client_id": client_two, "since": since.isoformat()}, headers=one
    )
    assert {i["client_id"] for i in filtered.json()["items"]} == {client_two}
    assert len(filtered.json()["items"]) == 5
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await gw.client.get("/v1/audit", params={"since": future}, headers=one)).json()["items"] == []

    # The literal "_" and "%" of a prefix are not wildcards.
    assert (await gw.client.get("/v1/audit", params={"path": "/v1/%"}, headers=one)).json()["items"] == []


async def test_audit_refuses_without_the_scope_and_names_bad_parameters(gw: Gateway) -> None:
    assert (await gw.client.get("/v1/audit")).status_code == 401
    assert (await gw.client.get("/v1/audit", headers=await gw.bureau())).status_code == 403
    admin = await gw.admin()
    for params, field in (
        ({"cursor": "%%%"}, "cursor"),
        ({"cursor": "WzEuNV0"}, "cursor"),  # [1.5]
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-11-28T10:00:00"}, "since"),
        ({"limit": "0"}, "limit"),
    ):
        response = await gw.client.get("/v1/audit", params=params, headers=admin)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["errors"][0]["field"] == field


async def test_a_failing_database_keeps_the_records_until_it_is_back(gw: Gateway) -> None:
    writer = gw.app.state.runtime.audit
    real_engine = writer.engine

    class Broken:
        url = real_engine.url

        def begin(self) -> Any:
            raise ConnectionError("database away")

    writer.engine = Broken()
    await gw.client.get("/v1/divisions")
    await asyncio.sleep(0.3)
    assert len(writer.pending) >= 1 and writer.failures >= 1
    writer.engine = real_engine
    await eventually(lambda: not writer.pending, timeout=10)
    assert (await audit.verify(real_engine)).ok
