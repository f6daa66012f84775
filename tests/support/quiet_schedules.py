"""Cron schedules that cannot fire while a test runs.

A deployment's next run time, and the runs Prefect's scheduler plans, change the moment one of its schedules
fires. A test that declares a fixed hour (09:00 Athens, Friday 18:00 UTC) and compares next run times or planned
runs taken at two moments fails when it happens to run across that hour. These schedules fire hours after the
moment they are made, whatever the wall clock says, so a comparison within a test never straddles a firing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


def hours_ahead(timezone: str, hours: int, now: datetime | None = None) -> datetime:
    """The start of the local hour in `timezone` that `hours` from `now` falls in: between `hours` - 1 and
    `hours` away (one more or less across a daylight-saving change). With 2 <= `hours` <= 24 it is the next
    firing of `daily_cron` and `weekly_cron` of it."""
    moment = (now or datetime.now(UTC)) + timedelta(hours=hours)
    return moment.astimezone(ZoneInfo(timezone)).replace(minute=0, second=0, microsecond=0)


def daily_cron(at: datetime) -> str:
    """Every day at `at`'s local hour: its next firing is `at`."""
    return f"0 {at.hour} * * *"


def weekly_cron(at: datetime) -> str:
    """Every week on `at`'s weekday (cron counts from Sunday = 0) at its local hour: its next firing is `at`."""
    return f"0 {at.hour} * * {at.isoweekday() % 7}"
