"""Dates relative to the ManualClock: a child's birth date, a lapse at Ljubljana midnight."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from service.clock import ManualClock

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
LJUBLJANA = ZoneInfo("Europe/Ljubljana")


def birth_date_years_ago(clock: ManualClock, years: int = 10, day: int = 15) -> str:
    return date(clock.now().year - years, 6, day).isoformat()


def birth_date_turning(clock: ManualClock, age: int, in_days: int) -> date:
    """A birth date such that the child reaches ``age`` in ``in_days`` days (Ljubljana day)."""
    birthday = clock.now().astimezone(LJUBLJANA).date() + timedelta(days=in_days)
    if (birthday.month, birthday.day) == (2, 29):
        birthday += timedelta(days=1)
    return birthday.replace(year=birthday.year - age)


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, clock_time(0), tzinfo=LJUBLJANA).astimezone(UTC)
