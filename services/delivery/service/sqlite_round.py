"""SQLite: the sender's round, recording what finished and claiming what is due, as one call on the
database connection's own thread (shared/sqlite_driver.py's `on_connection_thread`), commit
included, instead of a trip a statement. Each trip's result waited for the event loop, which was
busy with the attempts the last round claimed: seven or eight trips made a round of 16 leases last
18–20 ms, and the rounds, one after another, bounded the rate (bench/README.md, webhook delivery).
The statements and the rules are claims.py's and sender.py's (the same indexes:
tests/delivery/test_claim_plans.py); lists of ids travel as one JSON parameter."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, cast

from services.delivery.service.claims import pick
from shared.db import from_sqlite_time

# Recording (sender.py's `_record`: log.py's SUBSCRIPTIONS_HELD, DONE, RETRY_LATER, END_LEASES).
PRESENT = "SELECT id FROM subscription WHERE id IN (SELECT value FROM json_each(:ids))"
DONE = (
    "UPDATE delivery SET status = 'delivered', delivered_at = :at, attempts = lease.attempt "
    "FROM delivery_lease AS lease WHERE lease.delivery_id = delivery.id "
    "AND lease.delivery_id IN (SELECT value FROM json_each(:ids)) AND lease.leased_by = :worker"
)
RETRY_LATER = (
    "UPDATE delivery SET next_attempt_at = :retry_at, attempts = lease.attempt "
    "FROM delivery_lease AS lease WHERE lease.delivery_id = delivery.id "
    "AND lease.delivery_id = :failed_id AND lease.leased_by = :worker"
)
END_LEASES = (
    "DELETE FROM delivery_lease "
    "WHERE delivery_id IN (SELECT value FROM json_each(:ids)) AND leased_by = :worker"
)

# Claiming: PostgreSQL's rules (claims.py: BUSY, CANDIDATES_LATERAL, LEASE_AND_READ).
BUSY = (
    "SELECT subscription_id, count(*) FROM delivery_lease WHERE lease_until > :now GROUP BY subscription_id"
)
CANDIDATES = """
SELECT subscription.id, (
    SELECT json_group_array(heads.id) FROM (
        SELECT due.id AS id FROM delivery AS due
        WHERE due.subscription_id = subscription.id AND due.status = 'pending'
          AND due.next_attempt_at IS NOT NULL AND due.next_attempt_at <= :now
          AND NOT EXISTS (
              SELECT 1 FROM delivery_lease AS lease
              WHERE lease.delivery_id = due.id AND lease.lease_until > :now
          )
          AND due.id = (
              SELECT min(earlier.id) FROM delivery AS earlier
              WHERE earlier.subscription_id = due.subscription_id AND earlier.order_key = due.order_key
                AND earlier.status = 'pending'
          )
        ORDER BY due.next_attempt_at, due.id LIMIT :per_subscription
    ) AS heads
)
FROM subscription
WHERE subscription.enabled IS 1 AND subscription.id NOT IN (SELECT value FROM json_each(:full))
"""
# SQLite has no LATERAL, and given a join it scans the deliveries first: one row per subscription
# instead (CANDIDATES above), its heads gathered into a JSON array.
# No RETURNING: a returned row is a step of the statement, each taking the GIL back from the busy
# event loop (the lease took 2.5× its CPU time in wall time). The leased rows are read back by their
# lease instead (this round's time and worker; SQLite has one writer). A lapsed lease is taken over,
# its attempt counted on.
LEASE = """
INSERT INTO delivery_lease (delivery_id, subscription_id, lease_until, leased_by, attempt)
SELECT id, subscription_id, :until, :worker, attempts + 1 FROM delivery
WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'pending'
ON CONFLICT (delivery_id) DO UPDATE SET
    lease_until = excluded.lease_until, leased_by = excluded.leased_by, attempt = delivery_lease.attempt + 1
WHERE delivery_lease.lease_until <= :now
"""
LEASED = """
SELECT delivery.id, lease.attempt, delivery.event_seq, subscription.id AS subscription_id,
       CAST(subscription.identity AS TEXT) AS identity, subscription.url, subscription.secret,
       subscription.previous_secret, subscription.previous_secret_until, subscription.failing_since,
       event_record.body
FROM delivery_lease AS lease
JOIN delivery ON delivery.id = lease.delivery_id
JOIN subscription ON subscription.id = delivery.subscription_id
JOIN event_record ON event_record.seq = delivery.event_seq
WHERE lease.delivery_id IN (SELECT value FROM json_each(:ids))
  AND lease.leased_by = :worker AND lease.lease_until = :until
ORDER BY delivery.id
"""
ATTEMPT_SUBSCRIPTION = 1  # the subscription's place in an attempt's row (sender.py's RECORD_ATTEMPTS)


class LeasedRow(NamedTuple):
    """A leased delivery as claims.py's LEASE_AND_READ reads it (`attempts`: its lease's attempt)."""

    id: int
    attempts: int
    event_seq: int
    subscription_id: str
    identity: str
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None
    failing_since: str | None  # only whether it is set is read
    body: str


@dataclass
class Round:
    """One round's work; times as SQLite keeps them (shared/db.py's `sqlite_time`)."""

    worker: str
    now: str
    until: str
    limit: int
    batch: int
    attempts: tuple[str, dict[str, Any]] | None = None  # the attempts' INSERT and its parameters
    subscriptions: list[str] = field(default_factory=list)  # the attempts'
    delivered: list[int] = field(default_factory=list)
    retries: list[dict[str, Any]] = field(default_factory=list)  # RETRY_LATER's parameters, each


def run(connection: sqlite3.Connection, work: Round) -> tuple[list[LeasedRow], bool]:
    """On the connection's thread: record, then claim, then commit (with whatever the caller's
    transaction wrote before: a subscription failing), so the leases are taken before any is sent;
    the leased rows and whether the batch cut the candidates short. On an error nothing is committed
    and the caller's transaction rolls it all back. Committing here spares the round a trip of its
    own, which waited 3–4 ms for the loop busy with the last round's attempts (the driver makes no
    trip to commit a connection with nothing open)."""
    leased = _record_and_claim(connection, work)
    connection.commit()
    return leased


def _record_and_claim(connection: sqlite3.Connection, work: Round) -> tuple[list[LeasedRow], bool]:
    if work.attempts is not None:
        statement, parameters = work.attempts
        present = {row[0] for row in connection.execute(PRESENT, {"ids": json.dumps(work.subscriptions)})}
        if len(present) < len(work.subscriptions):  # deleted since these were claimed: not recorded
            rows = [row for row in json.loads(parameters["rows"]) if row[ATTEMPT_SUBSCRIPTION] in present]
            parameters = {**parameters, "rows": json.dumps(rows)}
        connection.execute(statement, parameters)
    if work.delivered:
        connection.execute(DONE, {"ids": json.dumps(work.delivered), "worker": work.worker, "at": work.now})
    if work.retries:
        connection.executemany(RETRY_LATER, work.retries)
    ended = work.delivered + [retry["failed_id"] for retry in work.retries]  # every attempt's lease
    if ended:
        connection.execute(END_LEASES, {"ids": json.dumps(ended), "worker": work.worker})
    busy = dict(connection.execute(BUSY, {"now": work.now}).fetchall())
    full = [subscription for subscription, count in busy.items() if count >= work.limit]
    found = connection.execute(
        CANDIDATES, {"now": work.now, "per_subscription": work.limit, "full": json.dumps(full)}
    ).fetchall()
    candidates = sorted((d, s) for s, ids in found for d in json.loads(ids))[: work.batch]
    ids, more = pick(candidates, busy, limit=work.limit, batch=work.batch)
    if not ids:
        return [], more
    lease = {"ids": json.dumps(ids), "now": work.now, "until": work.until, "worker": work.worker}
    if connection.execute(LEASE, lease).rowcount <= 0:
        return [], more
    rows = connection.execute(LEASED, lease).fetchall()
    return [_leased(row) for row in rows], more


def _leased(row: tuple[Any, ...]) -> LeasedRow:
    leased = LeasedRow._make(row)
    if leased.previous_secret_until is None:
        return leased
    return leased._replace(previous_secret_until=from_sqlite_time(cast(str, leased.previous_secret_until)))
