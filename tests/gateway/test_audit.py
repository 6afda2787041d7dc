"""Every call leaves evidence: batched records in a keyed hash chain, pinned by signed checkpoints on
a JetStream stream that refuses deletes, so neither a removed tail nor a rewritten record goes unseen
by someone holding only the database."""

from __future__ import annotations

import asyncio
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from cryptography.hazmat.primitives import serialization
from nats.js.errors import ServerError
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from cradle.audit import app as audit_cli
from gateway import audit
from gateway.audit import ChainKey, PendingRecord, record_hash
from gateway.checkpoints import Checkpoint, CheckpointInvalid, latest_checkpoint, load_signing_key
from gateway.models import AuditChainHead, AuditRecord
from shared.events.streams import Namespace
from shared.identity import generate_keypair
from tests.conftest import facility_body
from tests.gateway.conftest import Gateway, start_gateway
from tests.support import DatabaseFactory, eventually


async def records(gw: Gateway) -> list[AuditRecord]:
    await gw.audit_settled()
    async with gw.app.state.sessionmaker() as session:
        return list((await session.execute(select(AuditRecord).order_by(AuditRecord.seq))).scalars())


def verify_with_cli(url: str, keys: dict[str, Any], *extra: str) -> tuple[int, str]:
    """`cradle audit verify` as an operator runs it: the database, the audit keys and NATS from the
    environment (the test's namespace, set for every gateway test)."""
    env = {
        "GATEWAY_DATABASE_URL": url,
        "GATEWAY_AUDIT_HMAC_KEY": keys["audit_hmac_key"],
        "GATEWAY_AUDIT_VERIFY_KEY": public_pem(keys["audit_signing_key"]),
        "NATS_URL": os.environ["NATS_URL"],
        "CRADLE_EVENT_NAMESPACE": os.environ["CRADLE_EVENT_NAMESPACE"],
        "CRADLE_DATA_DIR": os.environ["CRADLE_DATA_DIR"],
        "COLUMNS": "240",
    }
    result = CliRunner().invoke(audit_cli, ["verify", *extra], env=env)
    return result.exit_code, result.output


def public_pem(private_pem: str) -> str:
    public = load_signing_key(private_pem).public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRADLE_DATA_DIR", str(tmp_path / "data"))


def key_of(gw: Gateway) -> ChainKey:
    return gw.app.state.audit_key


async def checkpointed(gw: Gateway) -> Checkpoint:
    """Wait until the checkpoint on the stream vouches for the whole chain as it is now."""
    await gw.audit_settled()
    async with gw.app.state.sessionmaker() as session:
        head = await session.get(AuditChainHead, 1)
        assert head is not None
        target = head.last_seq

    async def newest() -> Checkpoint | None:
        found = await read_checkpoint(gw)
        return found if found is not None and found.seq >= target else None

    return await eventually(newest, interval=0.1)


async def read_checkpoint(gw: Gateway) -> Checkpoint | None:
    publisher = gw.app.state.checkpoints
    js = await asyncio.wait_for(publisher.bus.wait_ready(), 30)  # the gateway connects in the background
    return await latest_checkpoint(js, publisher.bus.namespace, publisher.signing_key.public_key())


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


async def test_the_chain_verifies_and_names_a_deleted_record(gw: Gateway, keys: dict[str, Any]) -> None:
    for _ in range(5):
        await gw.client.get("/v1/divisions")
    rows = await records(gw)
    assert (await audit.verify(gw.app.state.engine, key=key_of(gw))).ok
    code, output = await asyncio.to_thread(
        verify_with_cli, gw.database_url, keys, "--namespace", "nocheckpoints"
    )
    assert code == 1 and "no checkpoint vouches" in output, output  # a deleted stream does not pass
    await checkpointed(gw)
    assert (await asyncio.to_thread(verify_with_cli, gw.database_url, keys))[0] == 0

    victim = rows[2]
    async with gw.app.state.sessionmaker() as session, session.begin():
        await session.execute(delete(AuditRecord).where(AuditRecord.seq == victim.seq))

    report = await audit.verify(gw.app.state.engine, key=key_of(gw))
    assert not report.ok and report.first_broken_seq == victim.seq
    code, output = await asyncio.to_thread(verify_with_cli, gw.database_url, keys)
    assert code == 1
    assert f"record {victim.seq}" in output and "missing" in output


async def test_an_altered_record_is_named(gw: Gateway) -> None:
    for _ in range(4):
        await gw.client.get("/v1/divisions")
    rows = await records(gw)
    async with gw.app.state.sessionmaker() as session, session.begin():
        await session.execute(update(AuditRecord).where(AuditRecord.seq == rows[1].seq).values(status=403))
    report = await audit.verify(gw.app.state.engine, key=key_of(gw))
    assert not report.ok and report.first_broken_seq == rows[1].seq and "altered" in (report.problem or "")


async def test_a_removed_tail_is_detected(gw: Gateway) -> None:
    for _ in range(3):
        await gw.client.get("/v1/divisions")
    rows = await records(gw)
    async with gw.app.state.sessionmaker() as session, session.begin():
        await session.execute(delete(AuditRecord).where(AuditRecord.seq == rows[-1].seq))
    report = await audit.verify(gw.app.state.engine, key=key_of(gw))
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
    report = await audit.verify(gw.app.state.engine, key=key_of(gw))
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
        key=key_of(gw),
    )
    await gw.client.get("/v1/divisions")
    await gw.audit_settled()

    removed = await audit.purge(engine, older_than=datetime.now(UTC) - timedelta(days=180), key=key_of(gw))
    assert removed == 3
    rows = await records(gw)
    assert rows and all(not r.path.startswith("/v1/old/") for r in rows)
    assert (await audit.verify(engine, key=key_of(gw))).ok
    async with gw.app.state.sessionmaker() as session:
        head = await session.get(AuditChainHead, 1)
        assert head is not None and head.anchor_seq == 3

    # Removing a record after the anchor is still caught.
    async with gw.app.state.sessionmaker() as session, session.begin():
        await session.execute(delete(AuditRecord).where(AuditRecord.seq == rows[0].seq))
    assert (await audit.verify(engine, key=key_of(gw))).first_broken_seq == rows[0].seq


async def test_pending_records_are_written_on_shutdown_and_checkpointed(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    async with start_gateway(
        databases=databases, keys=keys, audit_flush_seconds=10, audit_checkpoint_seconds=60
    ) as g:
        await eventually(lambda: g.app.state.checkpoints.bus.connected)
        for _ in range(3):
            await g.client.get("/v1/nowhere")
        assert len(g.app.state.runtime.audit.pending) == 3
        engine_url = g.database_url
    code, output = await asyncio.to_thread(verify_with_cli, engine_url, keys)
    assert code == 0 and "3 records" in output
    assert "checkpoint: record 3" in output  # the shutdown's checkpoint covers the final flush


async def test_audit_is_read_with_audit_read_a_page_at_a_time_and_filtered(gw: Gateway) -> None:
    one = await gw.bureau(["registry:read", "audit:read"], bureau="EDU")
    two = await gw.bureau(["registry:read"], bureau="HEALTH")
    # After the sign-ins: a token request is audited under the client id it tried.
    since = datetime.now(UTC)
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
    await eventually(lambda: not writer.pending)
    assert (await audit.verify(real_engine, key=key_of(gw))).ok


async def test_deleting_the_newest_records_and_moving_the_head_back_is_named(
    gw: Gateway, keys: dict[str, Any]
) -> None:
    for _ in range(8):
        await gw.client.get("/v1/divisions")
    checkpoint = await checkpointed(gw)
    rows = await records(gw)
    last, kept = rows[-1].seq, rows[-4]
    assert checkpoint.seq == last

    # What anyone with write access to the database can do: drop the newest three, move the head back.
    async with gw.app.state.sessionmaker() as session, session.begin():
        await session.execute(delete(AuditRecord).where(AuditRecord.seq > kept.seq))
        await session.execute(
            update(AuditChainHead)
            .where(AuditChainHead.id == 1)
            .values(last_seq=kept.seq, last_hash=kept.hash)
        )
    # The database alone still looks whole: this is what the checkpoint is for.
    assert (await audit.verify(gw.app.state.engine, key=key_of(gw))).ok
    # The running gateway will not vouch for the shortened chain with a checkpoint of its own.
    publisher = gw.app.state.checkpoints
    await eventually(lambda: publisher.refused >= 1)
    assert (await read_checkpoint(gw)) == checkpoint

    code, output = await asyncio.to_thread(verify_with_cli, gw.database_url, keys)
    assert code == 1, output
    assert f"records {kept.seq + 1}..{last} are missing" in output
    report = await audit.verify(gw.app.state.engine, key=key_of(gw), checkpoint=checkpoint)
    assert not report.ok and report.first_broken_seq == kept.seq + 1


async def test_a_record_rewritten_and_the_chain_recomputed_without_the_key_is_named(
    gw: Gateway, keys: dict[str, Any]
) -> None:
    for _ in range(6):
        await gw.client.get("/v1/divisions")
    await checkpointed(gw)
    rows = await records(gw)
    victim = rows[2].seq
    guessed = ChainKey(secrets.token_bytes(32))  # the attacker's key: the real one is not in the database

    async def rewrite(*, key: ChainKey | None, key_id: str | None) -> None:
        async with gw.app.state.sessionmaker() as session, session.begin():
            chain = list((await session.execute(select(AuditRecord).order_by(AuditRecord.seq))).scalars())
            prev = chain[0].prev_hash
            for record in chain:
                if record.seq == victim:
                    record.status = 200 if record.status != 200 else 204
                if record.seq >= victim:
                    fields = {name: getattr(record, name) for name in audit.HASHED_FIELDS}
                    record.prev_hash = prev
                    record.hash = record_hash(prev_hash=prev, seq=record.seq, fields=fields, key=key)
                    record.key_id = key_id
                prev = record.hash
            await session.execute(
                update(AuditChainHead)
                .where(AuditChainHead.id == 1)
                .values(last_seq=chain[-1].seq, last_hash=prev)
            )

    # A made-up key, even under the real key's id.
    await rewrite(key=guessed, key_id=key_of(gw).key_id)
    report = await audit.verify(gw.app.state.engine, key=key_of(gw))
    assert not report.ok and report.first_broken_seq == victim and "altered" in (report.problem or "")
    code, output = await asyncio.to_thread(verify_with_cli, gw.database_url, keys)
    assert code == 1 and f"broken at record {victim}" in output, output

    # Passing the records off as written before the chain was keyed (plain SHA-256) fails too.
    await rewrite(key=None, key_id=None)
    report = await audit.verify(gw.app.state.engine, key=key_of(gw))
    assert not report.ok and report.first_broken_seq == victim and "keyed" in (report.problem or "")


async def test_a_retention_purge_still_verifies_and_a_faked_one_does_not(
    gw: Gateway, keys: dict[str, Any]
) -> None:
    engine = gw.app.state.engine
    old = datetime.now(UTC) - timedelta(days=200)
    await audit.append(
        engine,
        [
            PendingRecord(old, "admin", "admin", None, "GET", f"/v1/old/{n}", 200, f"old-{n}", None, 10)
            for n in range(4)
        ],
        key=key_of(gw),
    )
    await checkpointed(gw)  # the checkpoint vouches for record 4, which retention will remove
    for _ in range(4):
        await gw.client.get("/v1/divisions")
    await checkpointed(gw)

    # The writer's own retention pass, as it runs at start and every `purge_every_seconds`.
    writer = gw.app.state.runtime.audit
    assert await audit.purge(engine, older_than=datetime.now(UTC) - writer.retention, key=writer.key) == 4
    code, output = await asyncio.to_thread(verify_with_cli, gw.database_url, keys)
    assert code == 0, output
    assert "intact" in output

    # Deleting the oldest kept records and moving the anchor past them, as a purge would, is not one.
    rows = await records(gw)
    async with gw.app.state.sessionmaker() as session, session.begin():
        await session.execute(delete(AuditRecord).where(AuditRecord.seq <= rows[1].seq))
        await session.execute(
            update(AuditChainHead)
            .where(AuditChainHead.id == 1)
            .values(anchor_seq=rows[1].seq, anchor_hash=rows[1].hash)
        )
    report = await audit.verify(engine, key=key_of(gw))
    assert not report.ok and "anchor" in (report.problem or "")
    code, output = await asyncio.to_thread(verify_with_cli, gw.database_url, keys)
    assert code == 1 and "retention anchor" in output, output


async def test_checkpoints_come_at_the_interval_signed_and_the_stream_keeps_them(gw: Gateway) -> None:
    publisher = gw.app.state.checkpoints
    assert publisher.interval_seconds == 0.5
    seen: list[Checkpoint] = []
    for _ in range(3):
        await gw.client.get("/v1/divisions")
        seen.append(await checkpointed(gw))
    assert [c.seq for c in seen] == sorted({c.seq for c in seen})  # each call moved the head
    gaps = [(b.at - a.at).total_seconds() for a, b in zip(seen, seen[1:], strict=False)]
    assert all(gap < 3 for gap in gaps), gaps
    assert seen[-1].hmac_key_id == key_of(gw).key_id

    js = publisher.bus.js
    namespace: Namespace = publisher.bus.namespace
    stream = namespace.stream("gateway")
    info = await js.stream_info(stream)
    assert info.config.deny_delete and info.config.deny_purge
    assert info.state.messages >= 3
    nc = await nats.connect(os.environ["NATS_URL"])
    try:
        admin = nc.jetstream()
        with pytest.raises(ServerError):
            await admin.delete_msg(stream, info.state.last_seq)
        with pytest.raises(ServerError):
            await admin.purge_stream(stream)
        # Someone who may publish there but lacks the audit key cannot plant a checkpoint.
        forged = Checkpoint(
            seq=1,
            hash="0" * 64,
            at=datetime.now(UTC),
            hmac_key_id=seen[-1].hmac_key_id,
            signing_key_id=seen[-1].signing_key_id,
            keyed_from_seq=1,
        )
        await admin.publish(
            namespace.subject("cradle.gateway.audit.checkpoint"),
            forged.signed(load_signing_key(generate_keypair()[0])),
        )
        with pytest.raises(CheckpointInvalid):
            await latest_checkpoint(admin, namespace, publisher.signing_key.public_key())
    finally:
        await nc.close()
    assert (await js.stream_info(stream)).state.messages >= info.state.messages + 1


async def test_with_nats_away_the_api_serves_and_checkpoints_catch_up(
    databases: DatabaseFactory,
    keys: dict[str, Any],
    own_nats: Any,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NATS_URL", own_nats.url)
    async with start_gateway(databases=databases, keys=keys) as g:
        publisher = g.app.state.checkpoints
        await eventually(lambda: publisher.bus.connected)
        await g.client.get("/v1/nowhere")
        await checkpointed(g)
        await own_nats.stop()
        for _ in range(3):
            assert (await g.client.get("/v1/nowhere")).status_code == 404  # served, and audited
        await g.audit_settled()
        published = publisher.published
        await asyncio.sleep(1.2)
        assert publisher.published == published  # nothing can go while NATS is away
        await own_nats.start()
        caught_up = await checkpointed(g)
        rows = await records(g)
        assert caught_up.seq == rows[-1].seq
