"""Deployment windows: when changes may start in an environment. A window is a set of days of
the week, a start and an end (hour:minute, wall-clock time in an IANA time zone); an end at or
before the start ends the next day (a window that spans midnight). An environment without
windows is always open; with some, a promotion into it outside them is SCHEDULED for the next
window start.

Stored on the environment as JSON: ``[{"days": [1..7], "start": "HH:MM", "end": "HH:MM",
"timeZone": "Europe/Berlin"}]``, days as ISO weekdays (1 Monday .. 7 Sunday).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.services.errors import InvalidInput

MAX_WINDOWS = 20
_HOUR_MINUTE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class DeploymentWindow:
    days: frozenset[int]  # ISO weekdays, 1 Monday .. 7 Sunday
    start: time
    end: time
    time_zone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def to_json(self) -> dict[str, Any]:
        return {
            "days": sorted(self.days),
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
            "timeZone": self.time_zone,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeploymentWindow:
        return window(data["days"], data["start"], data["end"], data["timeZone"])


def _hour_minute(value: str, field: str) -> time:
    match = _HOUR_MINUTE.match(value)
    if match is None:
        raise InvalidInput(f"{field} must be a time of day as HH:MM (00:00 to 23:59)", field=field)
    return time(int(match.group(1)), int(match.group(2)))


def window(days: Sequence[int], start: str, end: str, time_zone: str) -> DeploymentWindow:
    """A window, validated (InvalidInput naming the field at fault)."""
    if not days or any(day not in range(1, 8) for day in days):
        raise InvalidInput(
            "days must name at least one ISO weekday, 1 (Monday) to 7 (Sunday)", field="days"
        )
    begins = _hour_minute(start, "start")
    ends = _hour_minute(end, "end")
    if begins == ends:
        raise InvalidInput("a window's start and end must differ", field="end")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"{time_zone!r} is not an IANA time zone (such as Europe/Berlin)", field="timeZone"
        ) from None
    return DeploymentWindow(frozenset(days), begins, ends, time_zone)


def _occurrences(win: DeploymentWindow, around: date) -> list[tuple[datetime, datetime]]:
    """The window's (start, end) in UTC for the days from the day before ``around`` to a week
    after it. Wall-clock times that a DST change skips are read with the offset before it;
    those it repeats, as their first occurrence."""
    zone = win.zone
    found = []
    for offset in range(-1, 9):
        day = around + timedelta(days=offset)
        if day.isoweekday() not in win.days:
            continue
        starts = datetime.combine(day, win.start, tzinfo=zone)
        end_day = day if win.end > win.start else day + timedelta(days=1)
        ends = datetime.combine(end_day, win.end, tzinfo=zone)
        found.append((starts.astimezone(UTC), ends.astimezone(UTC)))
    return found


def next_window_start(windows: Sequence[DeploymentWindow], now: datetime) -> datetime:
    """When a change may start at the earliest: ``now`` itself when there are no windows or
    one is open at ``now`` (start included, end excluded), else the next window start (UTC)."""
    if not windows:
        return now
    upcoming: list[datetime] = []
    for win in windows:
        local_day = now.astimezone(win.zone).date()
        for starts, ends in _occurrences(win, local_day):
            if starts <= now < ends:
                return now
            if starts > now:
                upcoming.append(starts)
    assert upcoming, "every window with a day recurs within a week"
    return min(upcoming)


def windows_of(data: list[dict[str, Any]] | None) -> list[DeploymentWindow]:
    return [DeploymentWindow.from_json(item) for item in data or []]


def earliest_start(
    windows_json: list[dict[str, Any]] | None, not_before: datetime | None, now: datetime
) -> datetime | None:
    """When a promotion into an environment with these windows, asked not before
    ``not_before``, may start: None when it may start now."""
    start = next_window_start(windows_of(windows_json), max(now, not_before or now))
    return start if start > now else None
