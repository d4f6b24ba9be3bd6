"""Deployment windows, the pure part: when the next window opens, across days, midnight,
time zones and daylight-saving changes; and what a window may be."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from app.services.errors import InvalidInput
from app.services.windows import DeploymentWindow, next_window_start, window, windows_of

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = [1, 2, 3, 4, 5]


def at(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    """Wall-clock time in Berlin."""
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def test_no_windows_is_always_open() -> None:
    now = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    assert next_window_start([], now) == now


def test_inside_a_window_it_may_start_now_and_the_end_is_excluded() -> None:
    office = [window(WEEKDAYS, "09:00", "17:00", "Europe/Berlin")]
    now = at(2026, 12, 3, 9, 0)  # a Thursday, the window's first minute
    assert next_window_start(office, now) == now
    # At 17:00 it has closed: Friday 09:00.
    assert next_window_start(office, at(2026, 12, 3, 17, 0)) == at(2026, 12, 4, 9, 0)


def test_after_friday_the_next_start_is_monday() -> None:
    office = [window(WEEKDAYS, "09:00", "17:00", "Europe/Berlin")]
    assert next_window_start(office, at(2026, 12, 4, 18, 30)) == at(2026, 12, 7, 9, 0)
    assert next_window_start(office, at(2026, 12, 6, 23, 59)) == at(2026, 12, 7, 9, 0)


def test_a_window_that_spans_midnight() -> None:
    # Fridays 22:00 to Saturday 02:00.
    night = [window([5], "22:00", "02:00", "Europe/Berlin")]
    assert next_window_start(night, at(2026, 12, 4, 21, 0)) == at(2026, 12, 4, 22, 0)
    # Saturday 01:30 is still in Friday's window.
    inside = at(2026, 12, 5, 1, 30)
    assert next_window_start(night, inside) == inside
    # Saturday 02:00: over, next Friday.
    assert next_window_start(night, at(2026, 12, 5, 2, 0)) == at(2026, 12, 11, 22, 0)


def test_the_start_is_wall_clock_time_across_daylight_saving_changes() -> None:
    office = [window(WEEKDAYS, "09:00", "17:00", "Europe/Berlin")]
    # Friday evening before the spring change (29 March 2026): Monday 09:00 is CEST, 07:00 UTC.
    monday = next_window_start(office, at(2026, 3, 27, 18, 0))
    assert monday == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    # Before the autumn change (25 October 2026): Monday 09:00 is CET again, 08:00 UTC.
    assert next_window_start(office, at(2026, 10, 23, 18, 0)) == datetime(
        2026, 10, 26, 8, 0, tzinfo=UTC
    )


def test_a_midnight_window_over_a_daylight_saving_night() -> None:
    # Saturday 23:00 to Sunday 04:00, on the night the clocks go forward (02:00 -> 03:00).
    night = [window([6], "23:00", "04:00", "Europe/Berlin")]
    # Sunday 03:30 CEST exists and is inside.
    inside = at(2026, 3, 29, 3, 30)
    assert next_window_start(night, inside) == inside
    # Sunday 04:00 CEST (02:00 UTC) it closed: the window was 4 hours long that night.
    closed = datetime(2026, 3, 29, 2, 0, tzinfo=UTC)
    assert next_window_start(night, closed) == at(2026, 4, 4, 23, 0)


def test_a_start_in_the_skipped_hour_reads_with_the_offset_before_the_change() -> None:
    # 02:30 does not exist in Berlin on 29 March 2026: it is read as 01:30 UTC (03:30 CEST).
    skipped = [window([7], "02:30", "05:00", "Europe/Berlin")]
    assert next_window_start(skipped, at(2026, 3, 29, 0, 0)) == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC
    )


def test_the_earliest_of_several_windows_in_different_zones() -> None:
    windows = [
        window([1], "09:00", "10:00", "Europe/Berlin"),  # Monday 08:00 UTC
        window([1], "01:00", "02:00", "America/New_York"),  # Monday 06:00 UTC
    ]
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)  # Sunday
    assert next_window_start(windows, now) == datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


def test_windows_round_trip_through_json() -> None:
    original = [window([1, 3], "08:15", "01:00", "Asia/Tokyo")]
    stored = [w.to_json() for w in original]
    assert stored == [{"days": [1, 3], "start": "08:15", "end": "01:00", "timeZone": "Asia/Tokyo"}]
    assert windows_of(stored) == original
    assert windows_of(None) == []


@pytest.mark.parametrize(
    ("days", "start", "end", "zone", "field"),
    [
        ([], "09:00", "17:00", "UTC", "days"),
        ([0], "09:00", "17:00", "UTC", "days"),
        ([1], "9am", "17:00", "UTC", "start"),
        ([1], "09:00", "24:00", "UTC", "end"),
        ([1], "09:00", "09:00", "UTC", "end"),
        ([1], "09:00", "17:00", "Mars/Olympus", "timeZone"),
        ([1], "09:00", "17:00", "../etc/passwd", "timeZone"),
    ],
)
def test_a_bad_window_is_refused(
    days: list[int], start: str, end: str, zone: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        window(days, start, end, zone)
    assert refused.value.field == field


def test_a_window_is_a_value() -> None:
    assert isinstance(window([1], "09:00", "10:00", "UTC"), DeploymentWindow)
