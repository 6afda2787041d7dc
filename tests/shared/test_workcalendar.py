"""Shanghai's working calendar: weekends off, the State Council's holidays off, its make-up
weekend days on; deadlines counted in working days."""

from datetime import UTC, date, datetime

import pytest

from shared.workcalendar import STATE_COUNCIL_CALENDARS, CalendarYear, WorkCalendar

CALENDAR = WorkCalendar(STATE_COUNCIL_CALENDARS)


def test_a_make_up_sunday_is_a_working_day() -> None:
    assert date(2025, 1, 26).isoweekday() == 7
    assert CALENDAR.is_working_day(date(2025, 1, 26))
    assert CALENDAR.is_working_day(date(2026, 2, 28))  # a Saturday worked for the Spring Festival


def test_the_national_day_week_is_off_including_its_weekdays() -> None:
    assert not any(CALENDAR.is_working_day(date(2025, 10, d)) for d in range(1, 9))
    assert CALENDAR.is_working_day(date(2025, 10, 9))
    assert CALENDAR.is_working_day(date(2025, 10, 11))  # Saturday, made up


def test_ordinary_weekends_and_weekdays() -> None:
    assert not CALENDAR.is_working_day(date(2025, 3, 8))  # Saturday
    assert CALENDAR.is_working_day(date(2025, 3, 10))  # Monday
    # A year no notice covers: weekdays only.
    assert CALENDAR.is_working_day(date(2031, 1, 1)) and not CALENDAR.is_working_day(date(2031, 1, 4))


def test_working_days_skip_the_spring_festival_and_count_its_make_up_days() -> None:
    # From Monday 2025-01-27: 01-28..02-04 are off, Wednesday 02-05 is the next working day.
    assert CALENDAR.add_working_days(date(2025, 1, 27), 1) == date(2025, 2, 5)
    # 02-05, 02-06, 02-07 and the make-up Saturday 02-08.
    assert CALENDAR.add_working_days(date(2025, 1, 27), 4) == date(2025, 2, 8)
    assert CALENDAR.working_days_between(date(2025, 1, 24), date(2025, 2, 8)) == 6  # 01-26, 01-27, 02-05..08


def test_fifteen_working_days_across_the_national_day() -> None:
    # From Tuesday 2025-09-30: 10-09, 10-10, 10-11 (Saturday, made up), 10-13..17, 10-20..24, 10-27, 10-28.
    due = CALENDAR.add_working_days(date(2025, 9, 30), 15)
    assert due == date(2025, 10, 28)
    assert CALENDAR.working_days_between(date(2025, 9, 30), due) == 15


def test_a_deadline_is_the_end_of_the_local_working_day() -> None:
    # Friday 2026-03-06 22:30 in Shanghai (14:30 UTC): one working day is Monday 03-09, due by its end.
    lodged = datetime(2026, 3, 6, 14, 30, tzinfo=UTC)
    assert CALENDAR.deadline(lodged, 1) == datetime(2026, 3, 9, 16, 0, tzinfo=UTC)
    # Lodged at 00:30 Saturday local (Friday 16:30 UTC): the local day decides, still Monday.
    assert CALENDAR.deadline(datetime(2026, 3, 6, 16, 30, tzinfo=UTC), 1) == datetime(
        2026, 3, 9, 16, 0, tzinfo=UTC
    )


def test_a_year_cannot_list_a_day_both_off_and_working() -> None:
    with pytest.raises(ValueError, match="both off and working"):
        CalendarYear(holidays=[date(2027, 1, 1)], workdays=[date(2027, 1, 1)])


def test_count_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CALENDAR.add_working_days(date(2025, 1, 1), 0)
