"""Calendar days in the workspace's timezone (`LEADSTREAM_TIMEZONE`): the one definition
the daily windows, the task lists ("due today") and the team report share. Pure."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def day_of(ts: datetime, tz: str) -> date:
    """The calendar day of an instant in the workspace timezone."""
    return ts.astimezone(ZoneInfo(tz)).date()


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The instants the day starts and ends at, [start, end)."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), tzinfo=zone)
    return start, datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
