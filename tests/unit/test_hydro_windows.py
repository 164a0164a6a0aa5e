"""Calendar windows and water years for `watershed query --every` and `--water-year`."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from watershed.hydro.windows import add_months, calendar_windows, check_every, water_year

UTC = timezone.utc


def ts(*args: int, zone: object = UTC) -> int:
    return int(datetime(*args, tzinfo=zone).timestamp())  # type: ignore[arg-type]


def test_month_windows_start_at_start_and_keep_the_day() -> None:
    assert calendar_windows("month", ts(2025, 1, 31), ts(2025, 4, 15)) == [
        (ts(2025, 1, 31), ts(2025, 2, 28)), (ts(2025, 2, 28), ts(2025, 3, 31)),
        (ts(2025, 3, 31), ts(2025, 4, 15))]  # the last is cut at the end


def test_days_follow_the_local_wall_clock_across_dst() -> None:
    madrid = ZoneInfo("Europe/Madrid")
    windows = calendar_windows("day", ts(2025, 10, 25, zone=madrid), ts(2025, 10, 27, zone=madrid),
                               madrid)
    assert [b - a for a, b in windows] == [86400, 90000]  # 26 October has 25 hours


def test_water_years() -> None:
    assert water_year(2025) == (ts(2024, 10, 1), ts(2025, 10, 1))
    quito = ZoneInfo("America/Guayaquil")
    assert water_year(2025, 1, quito) == (ts(2025, 1, 1, zone=quito), ts(2026, 1, 1, zone=quito))
    assert calendar_windows("water-year", *water_year(2025)) == [water_year(2025)]


def test_add_months_clips_to_the_month_end() -> None:
    assert add_months(datetime(2024, 1, 31, tzinfo=UTC), 1) == datetime(2024, 2, 29, tzinfo=UTC)


@pytest.mark.parametrize("text", ["0h", "-15m", "1y", "month "])
def test_bad_windows(text: str) -> None:
    with pytest.raises(ValueError):
        check_every(text)
