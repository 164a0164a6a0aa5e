"""The truth-vs-stored report, the trace's line parsing, and the demo's embedded scenario."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from watershed.contracts.influx import message_lines
from watershed.contracts.mqtt import MessageReading, ReadingsMessage
from watershed_sim.demo import DEFAULT_SCENARIO, DemoSettings, demo_scenario
from watershed_sim import report
from watershed_sim.trace import _line_key

T = 1772323200  # 2026-03-01T00:00:00Z


def fake_influx(monkeypatch, rows: list[dict]) -> None:
    """InfluxDB answering the report's query with ``rows`` (channel in each row)."""
    def query(url, database, q):
        channels = sorted({r["channel"] for r in rows})
        return [({"channel": c}, [r for r in rows if r["channel"] == c]) for c in channels]
    monkeypatch.setattr(report, "query", query)


def point(channel: str, time: int, value: str | None, flags: int, seq: int) -> dict:
    return {"channel": channel, "time": time, "value": None if value is None else Decimal(value),
            "flags": flags, "seq": seq, "gateway": "gw-demo"}


def test_a_reading_matches_only_with_its_exact_value_flags_and_seq(monkeypatch):
    fake_influx(monkeypatch, [point("stage_m", T, "1.234", 0, 1),
                              point("stage_m", T + 900, "1.5", 0, 2),
                              point("rain_mm", T, None, 1, 3)])
    produced = {"SAN-01": [(1, 1, T, 1234, -3, 0), (2, 1, T + 900, 150, -2, 0),
                           (3, 16, T, 0, 0, 1), (4, 1, T + 1800, 1, 0, 0)]}
    [rain, stage] = report.compare("http://x", "db", produced)
    assert (stage.expected, stage.stored, stage.missing, stage.mismatched) == (3, 2, [4], [])
    assert (rain.expected, rain.stored, rain.missing, rain.mismatched) == (1, 1, [], [])


def test_a_reading_stored_at_another_time_is_mismatched_not_missing(monkeypatch):
    fake_influx(monkeypatch, [point("stage_m", T + 60, "1.234", 0, 1)])
    [stage] = report.compare("http://x", "db", {"SAN-01": [(1, 1, T, 1234, -3, 0)]})
    assert stage.missing == []
    assert stage.mismatched == [f"seq 1 stored at stage_m/{T + 60}, produced at stage_m/{T}"]


def test_two_readings_at_one_time_show_as_a_mismatch(monkeypatch):
    # InfluxDB keys a point by station, channel and time: the later write wins.
    fake_influx(monkeypatch, [point("stage_m", T, "1.3", 0, 2)])
    produced = {"SAN-01": [(1, 1, T, 1234, -3, 0), (2, 1, T, 13, -1, 0)]}
    [stage] = report.compare("http://x", "db", produced)
    assert stage.missing == [] and len(stage.mismatched) == 1
    assert stage.mismatched[0].startswith("seq 1 at")


def test_a_seq_printed_twice_with_different_content_is_reported(monkeypatch):
    fake_influx(monkeypatch, [point("stage_m", T, "1.234", 0, 1),
                              point("stage_m", T + 900, "1.3", 0, 1)])
    produced = {"SAN-01": [(1, 1, T, 1234, -3, 0), (1, 1, T + 900, 13, -1, 0)]}
    [stage] = report.compare("http://x", "db", produced)
    assert any("printed twice" in m for m in stage.mismatched)


def test_a_point_influxdb_shows_in_part_is_reported_to_be_asked_again(monkeypatch):
    # InfluxDB applies a point's fields one by one: a query racing the write can see the value
    # and seq of the last reading but not yet its flags (seen at the end of a fleet run)
    partly = point("air_temp_c", T, "9.8", 0, 7) | {"flags": None}
    missing_value = point("air_temp_c", T + 900, None, 1, 8)  # flagged missing: no value, whole
    fake_influx(monkeypatch, [partly, missing_value])
    produced = {"FLT-09": [(7, 17, T, 98, -1, 0), (8, 17, T + 900, 0, 0, 1)]}
    [temp] = report.compare("http://x", "db", produced)
    assert (temp.stored, temp.missing, temp.partial) == (1, [], [7])
    assert temp.mismatched == [f"seq 7 at {T}: the point has no flags (only part of it written)"]


class LateLastReading:
    """The report as InfluxDB answers it at each look: FLT-02's last reading lands after the
    first."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def report(self, produced):
        self.asked.append(sorted(produced))
        late = len(self.asked) == 1
        return [report.ChannelReport(station, "stage_m", expected=len(readings),
                                     stored=len(readings) - (late and station == "FLT-02"),
                                     missing=[2] if late and station == "FLT-02" else [])
                for station, readings in produced.items()]


def test_waiting_for_influxdb_asks_again_only_for_the_stations_still_missing_some():
    from watershed_sim.testbed import Pipeline

    looks = LateLastReading()
    produced = {"FLT-01": [(1, 1, T, 1, 0, 0), (2, 1, T + 900, 2, 0, 0)],
                "FLT-02": [(1, 1, T, 1, 0, 0), (2, 1, T + 900, 2, 0, 0)]}

    reports = Pipeline.wait_until_stored(looks, produced, timeout_s=30)  # type: ignore[arg-type]

    assert looks.asked == [["FLT-01", "FLT-02"], ["FLT-02"]]
    assert sorted((r.station, r.stored, r.missing) for r in reports) == [
        ("FLT-01", 2, []), ("FLT-02", 2, [])]


class PartLastReading(LateLastReading):
    """FLT-01's last reading shows in part at the first look, whole at the second."""

    def report(self, produced):
        self.asked.append(sorted(produced))
        part = len(self.asked) == 1
        return [report.ChannelReport(station, "stage_m", expected=len(readings),
                                     stored=len(readings) - (part and station == "FLT-01"),
                                     partial=[2] if part and station == "FLT-01" else [],
                                     mismatched=["seq 2 ..."] if part and station == "FLT-01"
                                     else [])
                for station, readings in produced.items()]


def test_waiting_for_influxdb_asks_again_for_a_station_with_a_point_in_part():
    from watershed_sim.testbed import Pipeline

    looks = PartLastReading()
    produced = {"FLT-01": [(1, 1, T, 1, 0, 0), (2, 1, T + 900, 2, 0, 0)],
                "FLT-02": [(1, 1, T, 1, 0, 0)]}

    reports = Pipeline.wait_until_stored(looks, produced, timeout_s=30)  # type: ignore[arg-type]

    assert looks.asked == [["FLT-01", "FLT-02"], ["FLT-01"]]
    assert sorted((r.station, r.stored, r.mismatched) for r in reports) == [
        ("FLT-01", 2, []), ("FLT-02", 1, [])]


def test_the_trace_finds_station_and_seq_in_a_line():
    msg = ReadingsMessage("gw-demo", "SAN-01", "santiago",
                          (MessageReading(41, "stage_m", T, 1234, -3, 0),
                           MessageReading(42, "rain_mm", T, 0, 0, 1)))
    assert [_line_key(line) for line in message_lines(msg)] == [("SAN-01", 41), ("SAN-01", 42)]
    assert _line_key("garbage") is None


def test_the_demo_runs_an_embedded_scenario_file():
    assert DEFAULT_SCENARIO.is_file()
    scenario = demo_scenario(DemoSettings())
    assert scenario.path == DEFAULT_SCENARIO
    assert [st.id for st in scenario.stations] == ["SAN-01", "MAY-02", "CAT-03"]
    assert scenario.duration_s == 6 * 3600 and scenario.speed == 720
    assert {st.basin for st in scenario.stations} == {"santiago", "mayo-chinchipe",
                                                     "catamayo-chira"}
    # its data lies in the past, where `watershed query` (end: now) finds it
    assert scenario.start + scenario.duration_s <= time.time()
    assert scenario.start % 3600 == 0 and time.time() - scenario.start < 7 * 3600


@pytest.mark.parametrize("n", [1, 5])
def test_the_demo_takes_any_number_of_stations_like_the_files(n):
    scenario = demo_scenario(DemoSettings(stations=n, hours=1, speed=360))
    ids = [st.id for st in scenario.stations]
    assert len(ids) == n == len(set(ids))
    assert [st.address for st in scenario.stations] == list(range(1, n + 1))
    assert all(st.sensors == scenario.stations[0].sensors for st in scenario.stations)
    assert (scenario.duration_s, scenario.speed) == (3600, 360)


def test_the_demo_scenario_ships_with_the_package():
    # package-data of pyproject.toml ships hardware/watershed_sim/data/*
    assert DEFAULT_SCENARIO.parent == Path(__import__("watershed_sim").__file__).parent / "data"
    assert DEFAULT_SCENARIO.is_file()
