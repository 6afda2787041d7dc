"""Subsidies: the calendar of a month's close, and the refusals the lists answer with."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.registry.config import RegistrySettings
from shared.clock import SHANGHAI
from shared.errors import Conflict, NotFound


class SubsidyListNotFound(NotFound):
    title = "Subsidy list not found"


class MonthNotClosed(Conflict):
    title = "Month not closed"
    type = "/problems/subsidy-month-open"


class SubsidyListFinal(Conflict):
    title = "Subsidy list already decided"
    type = "/problems/subsidy-list-final"


class SubsidyListOutOfOrder(Conflict):
    title = "Subsidy lists go in month order"
    type = "/problems/subsidy-list-order"


class NoSubsidyRate(Conflict):
    title = "No subsidy rate"
    type = "/problems/subsidy-rate-missing"


class PaymentRecorded(Conflict):
    title = "Payment already recorded"
    type = "/problems/subsidy-payment-recorded"


def month_start(month: str) -> datetime:
    """The month's first instant in Shanghai, in UTC."""
    year, number = int(month[:4]), int(month[5:7])
    return datetime(year, number, 1, tzinfo=SHANGHAI).astimezone(UTC)


def next_month(month: str) -> str:
    year, number = int(month[:4]), int(month[5:7])
    return f"{year + number // 12}-{number % 12 + 1:02d}"


def month_end(month: str) -> datetime:
    """The next month's first instant in Shanghai: every record of the month is before it."""
    return month_start(next_month(month))


def closes_at(month: str, settings: RegistrySettings) -> datetime:
    """The month's close: `subsidy_close_days` after its end (enrolment reports are due by then).
    The month's list reads every record as it stood at this instant, however late it is computed."""
    return month_end(month) + timedelta(days=settings.subsidy_close_days)


def last_day(month: str) -> date:
    """The month's last calendar day (month_end is in UTC, 16:00 of that day: its date is not it)."""
    return (month_end(month).astimezone(SHANGHAI) - timedelta(days=1)).date()
