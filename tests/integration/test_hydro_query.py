"""`watershed query` and `watershed recompute` on a record that went through the pipeline
(tests/integration/hydro_record.py): totals summed, unknown names listed, windows from --start,
calendar windows, the hourly rollups, rating_id / seq / flag names, local time."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from watershed.cli import main
from watershed.hydro.influxql import query

from .hydro_record import (GAP, MISSING_RAIN_AT, RATING_CHANGE, SPIKE_AT, T0, Record, rain_at,
                           record)

pytestmark = pytest.mark.integration
__all__ = ["record"]
END = "2025-11-20T06:00:00Z"


def run(record: Record, capsys: pytest.CaptureFixture[str], *args: str, code: int = 0
        ) -> tuple[str, str]:
    status = main(["query", "--config", str(record.config), "--format", "csv", *args])
    out, err = capsys.readouterr()
    assert status == code, err
    return out, err


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_rain_is_summed_per_hour_by_default_and_missing_is_counted(
        record: Record, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(record, capsys, "--station", "SAN-01", "--channel", "rain_mm",
                 "--start", "2025-11-20T00:00:00Z", "--end", END, "--every", "1h")
    first = rows(out)[0]
    expected = sum(Decimal(rain_at(T0 + 900 * k)) for k in range(3))  # 00:45 is missing
    assert (first["value"], first["agg"], first["count"], first["missing"]) == (
        str(expected), "sum", "3", "1")
    assert MISSING_RAIN_AT < T0 + 3600


def test_unknown_station_and_channel_list_the_known_ones(
        record: Record, capsys: pytest.CaptureFixture[str]) -> None:
    _, err = run(record, capsys, "--station", "SAN-09", "--start", str(T0), code=2)
    assert "unknown station 'SAN-09'; known: SAN-01, SAN-02, SAN-03" in err
    _, err = run(record, capsys, "--channel", "stage", "--start", str(T0), code=2)
    assert "unknown channel 'stage'; known:" in err and "stage_m" in err and "rain_mm" in err


def test_windows_start_at_start_and_zero_is_refused(
        record: Record, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(record, capsys, "--station", "SAN-02", "--start", "2025-11-20T00:30:00Z",
                 "--end", END, "--every", "1w")
    [week] = rows(out)
    assert week["time"] == "2025-11-20T00:30:00Z" and week["count"] == str(24 - 2)
    _, err = run(record, capsys, "--station", "SAN-02", "--start", str(T0), "--every", "0m",
                 code=2)
    assert "longer than zero" in err


def test_calendar_day_in_local_time(record: Record, capsys: pytest.CaptureFixture[str]) -> None:
    # 00:00-06:00 UTC is 19:00-01:00 in Guayaquil: two local days from a local midnight start
    out, _ = run(record, capsys, "--station", "SAN-02", "--tz", "local",
                 "--start", "2025-11-19T00:00:00-05:00", "--end", "2025-11-21T00:00:00-05:00",
                 "--every", "day")
    assert [(r["time"], r["count"]) for r in rows(out)] == [
        ("2025-11-19T00:00:00-05:00", "20"), ("2025-11-20T00:00:00-05:00", "4")]


def test_hourly_rollups_are_readable(record: Record,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["influx", "setup", "--config", str(record.config)]) == 0
    assert main(["influx", "downsample", "--config", str(record.config), "--start", str(T0),
                 "--end", END]) == 0
    capsys.readouterr()
    raw, _ = run(record, capsys, "--station", "SAN-02", "--start", str(T0), "--end", END,
                 "--every", "3h")
    hourly, _ = run(record, capsys, "--rp", "hourly", "--station", "SAN-02",
                    "--start", str(T0), "--end", END, "--every", "3h")
    assert [(r["time"], r["value"], r["count"]) for r in rows(hourly)] == [
        (r["time"], r["value"], r["count"]) for r in rows(raw)]
    assert len(rows(hourly)) == 2


def test_rating_id_seq_and_flag_names_on_request(
        record: Record, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(record, capsys, "--station", "SAN-01", "--channel", "discharge_m3s",
                 "--channel", "stage_m", "--start", str(T0), "--end", END,
                 "--columns", "seq,rating_id,flag_names")
    by = {(r["channel"], r["time"]): r for r in rows(out)}
    assert by[("stage_m", "2025-11-20T01:30:00Z")]["flag_names"] == "spike"
    assert by[("discharge_m3s", "2025-11-20T00:00:00Z")]["rating_id"] == "SAN-01.1"
    assert by[("discharge_m3s", "2025-11-20T03:00:00Z")]["rating_id"] == "SAN-01.2"
    assert by[("discharge_m3s", "2025-11-20T01:30:00Z")]["seq"] == by[
        ("stage_m", "2025-11-20T01:30:00Z")]["seq"]
    assert SPIKE_AT == T0 + 5400 and RATING_CHANGE == T0 + 3 * 3600
    assert not any(("stage_m", f"2025-11-20T02:{m:02d}:00Z") in by for m in (0, 15, 30, 45))
    assert len(GAP) == 4


def test_recompute_refuses_a_reversed_range_and_removes_unrated_discharge(
        record: Record, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recompute", "--config", str(record.config), "--station", "SAN-01",
                 "--start", END, "--end", str(T0)]) == 2
    assert "must be after start" in capsys.readouterr().err
    # Rating SAN-01.2 withdrawn: only SAN-01.1 (until 03:00) is in force.
    config = tmp_path / "ingest.toml"
    config.write_text(record.config.read_text().replace(
        'ratings = ["san01a.toml", "san01b.toml"]',
        f'ratings = ["{record.config.parent / "san01a.toml"}"]'))
    assert main(["recompute", "--config", str(config), "--station", "SAN-01",
                 "--start", "2025-11-20T05:00:00Z", "--end", END]) == 0
    assert "4 without an effective rating (4 discharge points derived before removed)" in \
        capsys.readouterr().out
    left = query(record.influx_url, record.database,
                 "SELECT value, rating_id FROM readings WHERE channel = 'discharge_m3s' AND "
                 "time >= '2025-11-20T05:00:00Z'")
    assert left == []
    stages = query(record.influx_url, record.database,
                   "SELECT count(value) FROM readings WHERE channel = 'stage_m' AND "
                   "time >= '2025-11-20T05:00:00Z'")
    assert stages[0][1][0]["count"] == 4  # the raw stage is kept


def test_water_year_by_basin_in_local_months(record: Record,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(record, capsys, "--basin", "santiago", "--channel", "rain_mm",
                 "--water-year", "2026", "--every", "month", "--tz", "local")
    got = {(r["station"], r["time"]) for r in rows(out)}
    # the record's hours (2025-11-19 19:00 .. 2025-11-20 01:00 local) lie in local November
    assert got == {(s, "2025-11-01T00:00:00-05:00") for s in ("SAN-01", "SAN-02", "SAN-03")}
