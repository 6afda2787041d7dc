"""Scheduled casework: missed incident deadlines and overdue rectifications."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.monitoring.config import MonitoringSettings


async def run_due(*, maker: async_sessionmaker[AsyncSession], settings: MonitoringSettings, now: datetime) -> dict[str, int]:
    """Returns what it did, by name (counts)."""
    return {}
