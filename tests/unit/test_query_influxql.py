"""The InfluxQL that `watershed query` and `watershed influx setup` send, and the output formats."""

from __future__ import annotations

from decimal import Decimal

import pytest
from zoneinfo import ZoneInfo

from watershed.hydro.influxql import quote_ident, quote_string
from watershed.ingest.config import ConfigError, IngestConfig
from watershed.hydro.query import ReadingsQuery, Record, float_digits, format_records
from watershed.hydro.influx_setup import go_duration_s, influxql_duration_s, rollup_selects


def test_raw_and_aggregated_statements() -> None:
    raw = ReadingsQuery(100, 200, stations=("SAN-01", "SAN-02"), channels=("stage_m",))
    assert raw.influxql() == (
        "SELECT value, flags FROM \"readings\" WHERE time >= 100s AND time < 200s AND "
        "(station = 'SAN-01' OR station = 'SAN-02') AND (channel = 'stage_m') "
        "GROUP BY station, basin, channel")
    hourly = ReadingsQuery(3700, 9000, basins=("santiago",), every="1h", agg="sum",
                           clean=True, retention_policy="raw")
    assert hourly.influxql() == (
        "SELECT mean(value) AS mean, min(value) AS min, max(value) AS max, sum(value) AS sum, "
        "count(value) AS count, count(flags) AS readings FROM \"raw\".\"readings\" WHERE "
        "time >= 3700s AND time < 9000s AND (basin = 'santiago') AND (flags = 0 OR flags = 128) "
        "GROUP BY time(3600s, 100s), station, basin, channel fill(none)")  # from --start
    rollups = ReadingsQuery(100, 200, retention_policy="hourly")
    assert rollups.influxql() == (
        "SELECT mean, min, max, sum, count FROM \"hourly\".\"readings_hourly\" WHERE "
        "time >= 100s AND time < 200s GROUP BY station, basin, channel")


def test_calendar_windows_are_one_statement_each() -> None:
    q = ReadingsQuery(1735689600, 1743465600, every="month")  # 2025-01-01 .. 2025-04-01
    assert [s.split("WHERE ")[1].split(" GROUP")[0] for s in q.statements()] == [
        "time >= 1735689600s AND time < 1738368000s",
        "time >= 1738368000s AND time < 1740787200s",
        "time >= 1740787200s AND time < 1743465600s"]


@pytest.mark.parametrize("every", ["0m", "-1h", "0s", "1 h", "fortnight"])
def test_empty_negative_and_unknown_windows_are_refused(every: str) -> None:
    with pytest.raises(ValueError, match="every"):
        ReadingsQuery(100, 200, every=every)


def test_extra_columns_only_for_raw_readings() -> None:
    q = ReadingsQuery(100, 200, columns=("seq", "rating_id", "flag_names"))
    assert q.influxql().startswith("SELECT value, flags, seq, rating_id FROM")
    with pytest.raises(ValueError, match="columns"):
        ReadingsQuery(100, 200, every="1h", columns=("seq",))
    with pytest.raises(ValueError, match="columns"):
        ReadingsQuery(100, 200, columns=("colour",))


@pytest.mark.parametrize("kwargs", [{"stations": ("a'b",)}, {"every": "1 h"}, {"agg": "median"},
                                    {"channels": ("",)}])
def test_bad_requests_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ReadingsQuery(100, 200, **kwargs)


def test_quoting() -> None:
    assert quote_ident('we"ird\\db') == '"we\\"ird\\\\db"'
    assert quote_string("it's") == "'it\\'s'"


def test_float_noise_is_dropped_and_digits_kept() -> None:
    assert float_digits(Decimal("0.30000000000000004")) == Decimal("0.3")
    assert format(float_digits(Decimal("1500.0")), "f") == "1500"
    assert float_digits(Decimal("1.367")) == Decimal("1.367")


def test_formats() -> None:
    records = [Record(1763676000, "SAN-01", "santiago", "stage_m", Decimal("1.50"),
                      {"flags": 0}),
               Record(1763676900, "SAN-01", "santiago", "stage_m", None, {"flags": 1})]
    assert format_records(records, "csv") == (
        "time,station,basin,channel,value,flags\n"
        "2025-11-20T22:00:00Z,SAN-01,santiago,stage_m,1.50,0\n"
        "2025-11-20T22:15:00Z,SAN-01,santiago,stage_m,,1\n")
    assert '"value":1.50' in format_records(records, "json")
    assert '"value":null,"flags":1' in format_records(records, "json")
    local = format_records(records, "csv", lambda _s: ZoneInfo("America/Guayaquil"))
    assert "2025-11-20T17:00:00-05:00,SAN-01" in local
    windows = [Record(1763676000, "SAN-01", "santiago", "rain_mm", Decimal("0.3"),
                      {"agg": "sum", "count": 2, "missing": 1})]
    table = format_records(windows, "table").splitlines()
    assert table[0].split() == ["time", "station", "basin", "channel", "value", "agg", "count",
                                "missing"]


def test_durations() -> None:
    assert influxql_duration_s("INF") == go_duration_s("0s") == 0
    assert influxql_duration_s("52w") == go_duration_s("8736h0m0s")
    assert influxql_duration_s("1h30m") == go_duration_s("1h30m0s")


def test_rollups_follow_the_sum_channels() -> None:
    c = IngestConfig.from_dict({"retention": {"sum_channels": []}})
    [(kind, select)] = rollup_selects(c)
    assert kind == "stats" and "channel" not in select
    with pytest.raises(ConfigError, match="retention.resample_for"):
        IngestConfig.from_dict({"retention": {"resample_for": "INF"}})
    with pytest.raises(ConfigError, match="retention.raw"):
        IngestConfig.from_dict({"retention": {"raw": "forever"}})
