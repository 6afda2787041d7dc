"""Scheduled work: escalating unacknowledged ban notifications, announcing expired certificates,
flagging employments whose health certificate lapsed, the default action on suspensions the
district left undecided, the annual re-check. Each is a plain function of `now`, so tests run them
at any moment; the app runs them every `jobs_interval_seconds`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.workforce.service import bans, health, practitioners, rechecks, standing
from services.workforce.service.common import Workforce
from shared.bounded import raise_if_cancelling
from shared.clock import utcnow
from shared.db import session_scope
from shared.jobs import round_alone

log = structlog.get_logger("cradle.workforce.jobs")


@dataclass(frozen=True)
class JobReport:
    escalated: int
    certificates_expired: int
    health_flagged: int
    suspensions_decided: int
    rechecked: int


async def run_due_jobs(
    *, maker: async_sessionmaker[AsyncSession], workforce: Workforce, now: datetime
) -> JobReport:
    async with session_scope(maker) as session:
        escalated = await bans.escalate_unacknowledged(session=session, workforce=workforce, now=now)
    async with session_scope(maker) as session:
        expired = await practitioners.announce_expired_certificates(session=session, now=now)
    flagged = 0
    while True:  # a batch per transaction, until none is left
        async with session_scope(maker) as session:
            batch = await health.flag_expired(session=session, now=now)
        flagged += batch
        if batch < health.BATCH:
            break
    async with session_scope(maker) as session:
        decided = await standing.apply_default_decisions(session=session, workforce=workforce, now=now)
    rechecked = await rechecks.run_annual_recheck(maker=maker, workforce=workforce, now=now)
    return JobReport(
        escalated=escalated,
        certificates_expired=expired,
        health_flagged=flagged,
        suspensions_decided=decided,
        rechecked=rechecked,
    )


async def run_round(
    *, maker: async_sessionmaker[AsyncSession], workforce: Workforce, now: datetime
) -> JobReport | None:
    """The due jobs, when no other replica is running them (shared/jobs.py); None when one is."""
    async with round_alone(maker, "workforce.jobs") as mine:
        return await run_due_jobs(maker=maker, workforce=workforce, now=now) if mine else None


async def run_forever(
    *, maker: async_sessionmaker[AsyncSession], workforce: Workforce, interval_seconds: float
) -> None:
    while True:
        try:
            report = await run_round(maker=maker, workforce=workforce, now=utcnow())
            if report is not None and any(report.__dict__.values()):
                log.info("jobs_ran", **report.__dict__)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the scheduler must outlive a database hiccup
            raise_if_cancelling()
            log.warning("jobs_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        await asyncio.sleep(interval_seconds)
