"""Five-field cron expressions in UTC: Celery's crontab parser reads the fields, this module finds fire times.

Day of month and day of week combine as in Vixie cron: when both are restricted (neither starts with `*`)
a day matches if either does, otherwise both must (Celery's own beat always ANDs them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from celery.schedules import crontab

# 8 years and a bit: a February 29 schedule fires at least once in any such span (2096 → 2104).
MAX_DAYS = 8 * 366 + 2
FIELDS = ("minute", "hour", "day_of_month", "month", "day_of_week")


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression: the sets of minutes, hours, days and months it fires on (UTC)."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday
    either_day: bool  # both day fields restricted: a day matches if either does

    def matches_day(self, day: date) -> bool:
        """Whether the schedule fires at some time of this day."""
        if day.month not in self.months:
            return False
        by_month_day = day.day in self.days_of_month
        by_week_day = day.isoweekday() % 7 in self.days_of_week
        return (by_month_day or by_week_day) if self.either_day else (by_month_day and by_week_day)

    def next_after(self, instant: datetime) -> datetime:
        """The first fire time strictly after the instant."""
        instant = instant.astimezone(UTC)
        day = instant.date()
        for _ in range(MAX_DAYS):
            if self.matches_day(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        fire = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                        if fire > instant:
                            return fire
            day += timedelta(days=1)
        raise ValueError(f"{self.expression!r} does not fire within {MAX_DAYS} days")

    def latest_at_or_before(self, instant: datetime) -> datetime:
        """The last fire time at or before the instant."""
        instant = instant.astimezone(UTC)
        day = instant.date()
        for _ in range(MAX_DAYS):
            if self.matches_day(day):
                for hour in reversed(self.hours):
                    for minute in reversed(self.minutes):
                        fire = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                        if fire <= instant:
                            return fire
            day -= timedelta(days=1)
        raise ValueError(f"{self.expression!r} did not fire within {MAX_DAYS} days")


def parse(expression: str) -> CronSchedule:
    """Parse `minute hour day-of-month month day-of-week`; ValueError says what is wrong."""
    fields = expression.split()
    if len(fields) != len(FIELDS):
        raise ValueError(
            f"a cron expression has {len(FIELDS)} fields ({' '.join(FIELDS)}), this one has {len(fields)}"
        )
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        parsed = crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month,
            day_of_week=day_of_week,
        )
    except Exception as exc:  # Celery raises ValueError, or its own ParseException for some inputs
        raise ValueError(f"invalid cron expression {expression!r}: {exc}") from exc
    schedule = CronSchedule(
        expression=" ".join(fields),
        minutes=tuple(sorted(parsed.minute)),
        hours=tuple(sorted(parsed.hour)),
        days_of_month=frozenset(parsed.day_of_month),
        months=frozenset(parsed.month_of_year),
        days_of_week=frozenset(parsed.day_of_week),
        either_day=not day_of_month.startswith("*") and not day_of_week.startswith("*"),
    )
    schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC))  # raises for a date that never comes
    return schedule
