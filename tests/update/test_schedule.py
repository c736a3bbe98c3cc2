"""When the daily update runs, in the box's local time zone (a real tz database zone).

The run time is ``update_time`` plus jitter as the local wall clock reads it on that day:
across a DST change the wait is 23 or 25 hours of real time, not 24; a day's window runs
once, even when the agent restarts inside it (after the update it ran, with a new jitter)
or the clock is set back after it ran; a window the clock jumped over (a box without a
real-time clock set by NTP after boot) is not run late in the day.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor_agent.update import state
from supervisor_agent.update.schedule import LATE_S, next_run, served_day, too_late
from supervisor_agent.update.state import Status

AT = dt.time(3, 0)


@pytest.fixture(autouse=True)
def paris() -> Iterator[None]:
    """The process's local zone is Europe/Paris (CET/CEST) for the test."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Paris"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


def local(*args: int) -> dt.datetime:
    """A local wall-clock time, aware (the offset in force then)."""
    return dt.datetime(*args).astimezone()  # type: ignore[arg-type]


def test_the_zone_is_really_paris() -> None:
    assert local(2024, 7, 1, 12, 0).utcoffset() == dt.timedelta(hours=2)
    assert local(2024, 12, 1, 12, 0).utcoffset() == dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("now", "hours"),
    [
        # the night the clocks go back (27 Oct 2024, 03:00 CEST -> 02:00 CET): 25 h of real time
        ((2024, 10, 26, 3, 0), 25),
        # the night they go forward (31 Mar 2024, 02:00 CET -> 03:00 CEST): 23 h
        ((2024, 3, 30, 3, 0), 23),
        ((2024, 6, 1, 3, 0), 24),
    ],
)
def test_across_a_dst_change_the_next_run_is_update_time_on_the_wall_clock(
    now: tuple[int, ...], hours: int
) -> None:
    start = local(*now)
    when = next_run(start, AT, jitter_s=0)
    assert when - start == dt.timedelta(hours=hours)  # real time between the two instants
    assert (when.astimezone().hour, when.astimezone().minute) == (3, 0)


def test_a_day_already_served_is_not_run_again_after_the_clock_is_set_back() -> None:
    ran = local(2024, 6, 1, 3, 4)
    status = Status(run=7, state="up_to_date", at=ran.astimezone(dt.UTC).isoformat())
    served = served_day(status, AT)
    assert served == dt.date(2024, 6, 1)
    set_back = local(2024, 6, 1, 2, 50)  # NTP moves the clock back 15 minutes
    assert next_run(set_back, AT, jitter_s=240, served=served) == local(2024, 6, 2, 3, 4)


def test_an_agent_restarted_in_the_window_by_its_own_update_waits_for_tomorrow(
    tmp_path: Path,
) -> None:
    """The switch restarts the agent at 03:02; its new jitter puts today's run at 03:08."""
    switched = local(2024, 6, 1, 3, 2)
    state.write_status(tmp_path, Status(run=3, state="switched", running="1.0.0"))
    written = state.read_status(tmp_path)
    written.at = switched.astimezone(dt.UTC).isoformat()
    served = served_day(written, AT)
    assert next_run(local(2024, 6, 1, 3, 3), AT, 480, served) == local(2024, 6, 2, 3, 8)


def test_a_run_before_the_window_does_not_serve_it() -> None:
    by_hand = Status(run=2, state="up_to_date", at=local(2024, 6, 1, 1, 0).isoformat())
    served = served_day(by_hand, AT)
    assert next_run(local(2024, 6, 1, 1, 1), AT, 0, served) == local(2024, 6, 1, 3, 0)


def test_no_status_yet_serves_no_day(tmp_path: Path) -> None:
    assert served_day(state.read_status(tmp_path), AT) is None


def test_a_window_the_clock_jumped_over_is_missed_not_run_in_business_hours() -> None:
    """A box without a real-time clock boots at its last saved time; NTP then sets it."""
    booted = local(2024, 6, 1, 22, 0)
    when = next_run(booted, AT, jitter_s=0)
    assert when == local(2024, 6, 2, 3, 0)
    set_by_ntp = local(2024, 6, 2, 9, 30)
    assert too_late(when, set_by_ntp)
    assert not too_late(when, when + dt.timedelta(seconds=LATE_S - 1))
    assert next_run(set_by_ntp, AT, 0) == local(2024, 6, 3, 3, 0)


def test_a_window_late_in_the_evening_whose_jitter_crosses_midnight() -> None:
    at = dt.time(23, 55)
    ran = local(2024, 6, 2, 0, 3)  # the 1 June window, with 8 minutes of jitter
    served = served_day(Status(run=1, state="up_to_date", at=ran.isoformat()), at)
    assert served == dt.date(2024, 6, 1)
    assert next_run(ran, at, 480, served) == local(2024, 6, 3, 0, 3)
