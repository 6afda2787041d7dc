"""Who may do what on the bus: each process's NATS permissions, derived from the stream layout.

A service publishes its own events and its own dead letters, and reads the streams it consumes
through its own durable consumers; it never creates, changes or deletes a stream (the provisioning
credential does). A facility's video system publishes its CCTV events and nothing else."""

from __future__ import annotations

from shared.events.deadletters import ALERTING_DURABLE, ALERTING_READER
from shared.events.streams import INGEST_DURABLE, INGEST_READER, READS, SERVICES, Namespace
from shared.nats_auth import Permissions


def inbox_prefix(owner: str) -> str:
    """Each credential gets inboxes of its own, so none can read another's replies (a pull
    consumer's messages and every publish ack arrive on the requester's inbox)."""
    return f"_INBOX.{owner}"


def consumed(namespace: Namespace, service: str) -> list[tuple[str, str]]:
    """(stream, durable) for every durable consumer the service runs."""
    pairs = [(namespace.stream(source), service) for source in READS[service]]
    if service == INGEST_READER:
        pairs.append((namespace.ingest_stream, INGEST_DURABLE))
    if service == ALERTING_READER:
        pairs.append((namespace.dead_letter_stream, ALERTING_DURABLE))
    return pairs


def streams_used(namespace: Namespace, service: str) -> list[str]:
    """The streams a service waits for at start-up: its own, those it reads and, when it reads
    anything, the dead-letter stream."""
    reads = [stream for stream, _ in consumed(namespace, service)]
    names = [namespace.stream(service), *reads]
    if reads:
        names.append(namespace.dead_letter_stream)
    return list(dict.fromkeys(names))


def service_permissions(namespace: Namespace, service: str) -> Permissions:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}")
    publish = [
        namespace.service_subjects(service),
        f"{namespace.name}.dlq.{service}.>",
        "$JS.API.INFO",
        *(f"$JS.API.STREAM.INFO.{stream}" for stream in streams_used(namespace, service)),
    ]
    if service == "gateway":
        # The gateway reads back its newest audit checkpoint so it never vouches for a shortened chain.
        publish.append(f"$JS.API.STREAM.MSG.GET.{namespace.stream('gateway')}")
    for stream, durable in consumed(namespace, service):
        publish += [
            f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
            f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",  # with a filter subject
            f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
            f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
            # Acks, naks and terms reply to the delivery's subject: the v1 form and the v2 one
            # (`$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.…`).
            f"$JS.ACK.{stream}.{durable}.>",
            f"$JS.ACK.*.*.{stream}.{durable}.>",
        ]
    return Permissions(publish=tuple(publish), subscribe=(f"{inbox_prefix(service)}.>",))


def device_permissions(namespace: Namespace, *, facility_id: str, credential_id: str) -> Permissions:
    return Permissions(
        publish=(namespace.ingest_subject(facility_id),),
        subscribe=(f"{inbox_prefix(credential_id)}.>",),
    )
