"""Shanghai's working calendar: Monday to Friday are working days, except the public holidays the
State Council announces each year; some weekend days are working days instead (调休 make-up days).
Deadlines counted in working days (a complaint's acknowledgement and answer) use it.

A deployment gives the calendar per year in its settings (`{year: {holidays, workdays}}`); the
defaults below are the State Council's published notices:
- 2025: 国务院办公厅关于2025年部分节假日安排的通知 (国办发明电〔2024〕12号, 2024-11-12),
  https://m.gmw.cn/2024-11/12/content_1303894933.htm (Xinhua's text).
- 2026: 国务院办公厅关于2026年部分节假日安排的通知 (2025-11-04),
  https://politics.gmw.cn/2025-11/04/content_38391083.htm (Xinhua's text).
A year the settings do not list counts weekdays only: add its notice when the State Council
publishes it (each November)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

SHANGHAI = ZoneInfo("Asia/Shanghai")


class CalendarYear(BaseModel):
    """One year's notice: the days off (holidays and the weekdays swapped away) and the weekend
    days that are working days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    holidays: list[date] = Field(default_factory=list)
    workdays: list[date] = Field(default_factory=list)

    @model_validator(mode="after")
    def _apart(self) -> CalendarYear:
        both = set(self.holidays) & set(self.workdays)
        if both:
            raise ValueError(f"days both off and working: {', '.join(sorted(map(str, both)))}")
        return self


def _span(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _days(*spans: tuple[str, str]) -> list[date]:
    return [
        day for first, last in spans for day in _span(date.fromisoformat(first), date.fromisoformat(last))
    ]


# The notices' text, day for day (see the module's docstring for the sources).
STATE_COUNCIL_CALENDARS: dict[int, CalendarYear] = {
    2025: CalendarYear(
        holidays=_days(
            ("2025-01-01", "2025-01-01"),  # 元旦
            ("2025-01-28", "2025-02-04"),  # 春节
            ("2025-04-04", "2025-04-06"),  # 清明节
            ("2025-05-01", "2025-05-05"),  # 劳动节
            ("2025-05-31", "2025-06-02"),  # 端午节
            ("2025-10-01", "2025-10-08"),  # 国庆节、中秋节
        ),
        workdays=[
            date.fromisoformat(d)
            for d in ("2025-01-26", "2025-02-08", "2025-04-27", "2025-09-28", "2025-10-11")
        ],
    ),
    2026: CalendarYear(
        holidays=_days(
            ("2026-01-01", "2026-01-03"),  # 元旦
            ("2026-02-15", "2026-02-23"),  # 春节
            ("2026-04-04", "2026-04-06"),  # 清明节
            ("2026-05-01", "2026-05-05"),  # 劳动节
            ("2026-06-19", "2026-06-21"),  # 端午节
            ("2026-09-25", "2026-09-27"),  # 中秋节
            ("2026-10-01", "2026-10-07"),  # 国庆节
        ),
        workdays=[
            date.fromisoformat(d)
            for d in ("2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10")
        ],
    ),
}


def default_calendars() -> dict[int, CalendarYear]:
    return dict(STATE_COUNCIL_CALENDARS)


class WorkCalendar:
    """Which days are working days, and deadlines counted in them."""

    def __init__(self, years: Mapping[int, CalendarYear], zone: ZoneInfo = SHANGHAI) -> None:
        self._off: set[date] = set()
        self._on: set[date] = set()
        for calendar in years.values():
            self._off.update(calendar.holidays)
            self._on.update(calendar.workdays)
        self.zone = zone

    def is_working_day(self, day: date) -> bool:
        if day in self._on:
            return True
        if day in self._off:
            return False
        return day.isoweekday() <= 5

    def add_working_days(self, day: date, count: int) -> date:
        """The `count`-th working day after `day` (`day` itself not counted)."""
        if count < 1:
            raise ValueError("count must be at least 1")
        found = 0
        while found < count:
            day += timedelta(days=1)
            if self.is_working_day(day):
                found += 1
        return day

    def working_days_between(self, first: date, last: date) -> int:
        """Working days after `first` up to and including `last`."""
        return sum(1 for day in _span(first + timedelta(days=1), last) if self.is_working_day(day))

    def deadline(self, moment: datetime, working_days: int) -> datetime:
        """The end of the `working_days`-th working day after the local day of `moment`: a complaint
        lodged on Friday evening with one working day to acknowledge is due by Monday's end. Returned
        as the next local midnight, in UTC."""
        local_day = moment.astimezone(self.zone).date()
        due = self.add_working_days(local_day, working_days)
        return datetime.combine(due + timedelta(days=1), time(0), tzinfo=self.zone).astimezone(
            ZoneInfo("UTC")
        )
