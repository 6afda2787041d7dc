"""Signed checkpoints of the audit chain, kept outside the database.

Every `audit_checkpoint_seconds` the gateway reads the chain head and, when it moved, publishes
{seq, hash, time, key ids} signed with its Ed25519 audit key to `<ns>.gateway.audit.checkpoint`.
The gateway's stream refuses message deletes and purges (shared/events/streams.py), so someone who
can rewrite the database cannot take back what a checkpoint vouches for: removing records up to a
checkpointed seq, or re-hashing them, shows in `cradle audit verify`. NATS down: the API keeps
serving and writing records; the next tick after the bus is back publishes the current head, which
covers everything before it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.models import AuditChainHead, AuditRecord
from shared.bounded import raise_if_cancelling
from shared.events.bus import EventBus
from shared.events.permissions import inbox_prefix
from shared.events.streams import Namespace

if TYPE_CHECKING:  # the settings validate their key with load_signing_key, from here
    from gateway.config import GatewaySettings

CHECKPOINT_TYPE = "cradle.gateway.audit.checkpoint"
log = structlog.get_logger("cradle.gateway.checkpoints")
head_table = AuditChainHead.__table__
record_table = AuditRecord.__table__


class CheckpointInvalid(ValueError):
    """The latest checkpoint on the stream is not one the gateway's audit key signed."""


def load_signing_key(pem: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("must be a PEM private key (set by `cradle up`, or from your secret store)") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("must be an Ed25519 private key")
    return key


def load_verify_key(pem: str) -> Ed25519PublicKey:
    """The public half, from a public PEM or (what the gateway's operator holds) the private one."""
    if "PRIVATE KEY" in pem:
        return load_signing_key(pem).public_key()
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError("must be a PEM Ed25519 key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("must be an Ed25519 public key")
    return key


def signing_key_id(key: Ed25519PublicKey) -> str:
    """A short fingerprint of the public key, named in each checkpoint so rotation is visible."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def subject(namespace: Namespace) -> str:
    return namespace.subject(CHECKPOINT_TYPE)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    hash: str
    at: datetime
    hmac_key_id: str
    signing_key_id: str
    keyed_from_seq: int | None

    def payload(self) -> bytes:
        body = {
            "v": 1,
            "seq": self.seq,
            "hash": self.hash,
            "at": self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "hmac_key_id": self.hmac_key_id,
            "signing_key_id": self.signing_key_id,
            "keyed_from_seq": self.keyed_from_seq,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def signed(self, key: Ed25519PrivateKey) -> bytes:
        signature = base64.b64encode(key.sign(self.payload())).decode()
        return json.dumps({"checkpoint": json.loads(self.payload()), "signature": signature}).encode()

    @classmethod
    def parse(cls, data: bytes, key: Ed25519PublicKey) -> Checkpoint:
        """The checkpoint in a stream message, after checking its signature."""
        try:
            message = json.loads(data)
            body = message["checkpoint"]
            checkpoint = cls(
                seq=int(body["seq"]),
                hash=str(body["hash"]),
                at=datetime.strptime(body["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
                hmac_key_id=str(body["hmac_key_id"]),
                signing_key_id=str(body["signing_key_id"]),
                keyed_from_seq=None if body["keyed_from_seq"] is None else int(body["keyed_from_seq"]),
            )
            signature = base64.b64decode(message["signature"], validate=True)
        except (ValueError, TypeError, KeyError) as exc:
            raise CheckpointInvalid(f"unreadable checkpoint ({type(exc).__name__})") from exc
        if checkpoint.signing_key_id != signing_key_id(key):
            raise CheckpointInvalid(
                f"signed with key {checkpoint.signing_key_id}, not the audit key {signing_key_id(key)}"
            )
        try:
            key.verify(signature, checkpoint.payload())
        except InvalidSignature:
            raise CheckpointInvalid("its signature does not verify with the audit key") from None
        return checkpoint


async def latest_checkpoint(
    js: JetStreamContext, namespace: Namespace, key: Ed25519PublicKey
) -> Checkpoint | None:
    """The newest checkpoint on the stream (None before the first one); CheckpointInvalid when the
    newest message there is not a valid one — a forgery is evidence too, never skipped."""
    try:
        message = await js.get_last_msg(namespace.stream("gateway"), subject(namespace))
    except NotFoundError:
        return None
    return Checkpoint.parse(message.data or b"", key)


class CheckpointPublisher:
    """One background task: read the chain head, sign it, publish it when it moved. A publish that
    fails (NATS away, no ack) is retried on the next tick with the then-current head."""

    def __init__(
        self,
        engine: AsyncEngine,
        bus: EventBus,
        *,
        signing_key: Ed25519PrivateKey,
        hmac_key_id: str,
        interval_seconds: float,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.signing_key = signing_key
        self.hmac_key_id = hmac_key_id
        self.interval_seconds = interval_seconds
        self.signing_key_id = signing_key_id(signing_key.public_key())
        self.published = 0
        self.last: Checkpoint | None = None  # the newest one the stream acknowledged
        self.refused = 0  # heads not published because they contradict the newest checkpoint
        self._task: asyncio.Task[None] | None = None
        self._unreadable_logged = False

    def start(self) -> None:
        self.bus.start()
        self._task = asyncio.create_task(self._run(), name="audit-checkpoints")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # The head as the audit writer left it at shutdown, when NATS is there to take it.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.publish_once(), timeout=3)
        await self.bus.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                await self.publish_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next tick tries again; the API is not held up
                raise_if_cancelling()
                log.warning("audit_checkpoint_failed", error=f"{type(exc).__name__}: {exc}"[:300])

    async def publish_once(self) -> Checkpoint | None:
        """Publish the current head if it moved on from the newest checkpoint. Never a head that
        contradicts it (behind it, or no longer holding its record): that is a truncated or rewritten
        log, and a checkpoint of it would cover the change up — refused, logged, counted."""
        if not self.bus.connected or self.bus.js is None:
            return None
        js = self.bus.js
        newest = await self._newest(js)
        async with self.engine.connect() as connection:
            head = (await connection.execute(select(head_table).where(head_table.c.id == 1))).one()
            if head.last_seq == 0 or (
                newest is not None and (newest.seq, newest.hash) == (head.last_seq, head.last_hash)
            ):
                return None
            if newest is not None:
                problem = await _contradiction(connection, head, newest)
                if problem is not None:
                    self.refused += 1
                    log.error(
                        "audit_chain_contradicts_checkpoint", checkpoint_seq=newest.seq, problem=problem
                    )
                    return None
        checkpoint = Checkpoint(
            seq=int(head.last_seq),
            hash=str(head.last_hash),
            at=datetime.now(UTC),
            hmac_key_id=self.hmac_key_id,
            signing_key_id=self.signing_key_id,
            keyed_from_seq=None if head.keyed_from_seq is None else int(head.keyed_from_seq),
        )
        # Replicas that read the same head publish one message, not one each.
        await js.publish(
            subject(self.bus.namespace),
            checkpoint.signed(self.signing_key),
            timeout=2,
            headers={"Nats-Msg-Id": f"audit-checkpoint-{checkpoint.seq}-{checkpoint.hash[:16]}"},
        )
        self.last = checkpoint
        self.published += 1
        return checkpoint

    async def _newest(self, js: JetStreamContext) -> Checkpoint | None:
        """The stream's newest checkpoint (another replica's too); this process's own when the
        stream cannot be read. A forged one is not built on: the last one this process made is."""
        try:
            found = await latest_checkpoint(js, self.bus.namespace, self.signing_key.public_key())
        except CheckpointInvalid as exc:
            log.error("audit_checkpoint_forged", problem=str(exc))
            return self.last
        except Exception as exc:  # e.g. a credential without message reads: fall back on memory
            if not self._unreadable_logged:
                self._unreadable_logged = True
                log.warning("audit_checkpoint_unreadable", error=f"{type(exc).__name__}: {exc}"[:200])
            return self.last
        if found is None or (self.last is not None and self.last.seq > found.seq):
            return self.last
        return found


async def _contradiction(connection: AsyncConnection, head: Row[Any], newest: Checkpoint) -> str | None:
    if head.last_seq < newest.seq:
        return f"the chain head is at {head.last_seq}, behind the checkpoint"
    if newest.seq <= head.anchor_seq:
        return None  # retention has removed the checkpointed record since
    recorded = (
        await connection.execute(select(record_table.c.hash).where(record_table.c.seq == newest.seq))
    ).scalar_one_or_none()
    if recorded != newest.hash:
        return "the checkpointed record is missing or changed"
    return None


def checkpoint_publisher(
    settings: GatewaySettings, engine: AsyncEngine, *, hmac_key_id: str
) -> CheckpointPublisher:
    """The gateway's NATS connection (its own credential when `NATS_CREDS` is set) and publisher."""
    namespace = Namespace(settings.event_namespace)
    bus = EventBus(
        url=settings.nats_url,
        namespace=namespace,
        replicas=settings.nats_replicas,
        client_name="gateway",
        streams=[namespace.stream("gateway")],
        credentials=settings.nats_creds,
        tls_ca=settings.nats_tls_ca,
        inbox_prefix=inbox_prefix("gateway"),
    )
    return CheckpointPublisher(
        engine,
        bus,
        signing_key=load_signing_key(settings.audit_signing_key.get_secret_value()),
        hmac_key_id=hmac_key_id,
        interval_seconds=settings.audit_checkpoint_seconds,
    )
