"""`watershed query` against the real influxd 1.6.7: filters, windows, aggregates, exact values."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from watershed.cli import main
from watershed.devservers import Influxd
from watershed.ingest.writer import V1Writer

pytestmark = pytest.mark.integration

HOUR = 1763676000  # 2025-11-20T22:00:00Z


def line(station: str, basin: str, channel: str, ts: int, value: str | None, flags: int = 0
         ) -> str:
    fields = f"flags={flags}i,seq=1i,gateway=\"gw-zamora\""
    if value is not None:
        fields = f"value={value},{fields}"
    return f"readings,basin={basin},channel={channel},station={station} {fields} {ts}"


@pytest.fixture
def db(influxd: Influxd, fresh_influx_db: str) -> str:
    V1Writer(influxd.url, fresh_influx_db).write([
        line("SAN-01", "santiago", "stage_m", HOUR, "1.234"),
        line("SAN-01", "santiago", "stage_m", HOUR + 900, "1.50"),
        line("SAN-01", "santiago", "stage_m", HOUR + 1800, "9.9", flags=16),  # a spike
        line("SAN-01", "santiago", "stage_m", HOUR + 3600, "0.7"),
        line("SAN-01", "santiago", "rain_mm", HOUR, "0.1"),
        line("SAN-01", "santiago", "rain_mm", HOUR + 900, "0.2"),
        line("SAN-01", "santiago", "rain_mm", HOUR + 1800, None, flags=1),
        line("SAN-02", "santiago", "rain_mm", HOUR, "1.3"),
        line("MAY-01", "mayo-chinchipe", "rain_mm", HOUR, "4.5"),
    ])
    return fresh_influx_db


def run(influxd: Influxd, db: str, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(["query", "--url", influxd.url, "--db", db, "--start", str(HOUR),
                 "--end", str(HOUR + 7200), *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def as_json(text: str) -> list[dict]:
    return json.loads(text, parse_float=Decimal)


def test_raw_readings_are_exact(influxd: Influxd, db: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out = run(influxd, db, capsys, "--station", "SAN-01", "--channel", "stage_m",
              "--format", "json")
    assert [(r["time"], r["value"], r["flags"]) for r in as_json(out)] == [
        ("2025-11-20T22:00:00Z", Decimal("1.234"), 0), ("2025-11-20T22:15:00Z", Decimal("1.5"), 0),
        ("2025-11-20T22:30:00Z", Decimal("9.9"), 16), ("2025-11-20T23:00:00Z", Decimal("0.7"), 0)]
    assert '"value":1.234' in out  # a JSON number in its exact text, not a float's expansion


def test_hourly_rain_sum_per_station_of_a_basin_as_csv(
        influxd: Influxd, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(influxd, db, capsys, "--basin", "santiago", "--channel", "rain_mm",
              "--every", "1h", "--format", "csv")  # rain is a total: summed by default
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["station"], r["time"], r["value"], r["agg"], r["count"], r["missing"])
            for r in rows] == [
        ("SAN-01", "2025-11-20T22:00:00Z", "0.3", "sum", "2", "1"),  # 0.1 + 0.2, no float noise
        ("SAN-02", "2025-11-20T22:00:00Z", "1.3", "sum", "1", "0")]


def test_min_max_mean_and_clean(influxd: Influxd, db: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    def hourly(agg: str, *more: str) -> list[Decimal]:
        out = run(influxd, db, capsys, "--station", "SAN-01", "--channel", "stage_m",
                  "--every", "1h", "--agg", agg, "--format", "json", *more)
        return [r["value"] for r in as_json(out)]
    assert hourly("max") == [Decimal("9.9"), Decimal("0.7")]
    assert hourly("max", "--clean") == [Decimal("1.5"), Decimal("0.7")]
    assert hourly("min") == [Decimal("1.234"), Decimal("0.7")]
    assert hourly("mean", "--clean") == [Decimal("1.367"), Decimal("0.7")]


def test_table_with_config_and_several_stations(
        influxd: Influxd, db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "ingest.toml"
    config.write_text(f'[influx]\nurl = "{influxd.url}"\ndatabase = "{db}"\n')
    assert main(["query", "--config", str(config), "--start", "2025-11-20T22:00:00Z",
                 "--end", "2025-11-20T22:01:00Z", "--channel", "rain_mm",
                 "--station", "SAN-02", "--station", "MAY-01"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["time", "station", "basin", "channel", "value", "flags"]
    assert [ln.split() for ln in lines[1:]] == [
        ["2025-11-20T22:00:00Z", "MAY-01", "mayo-chinchipe", "rain_mm", "4.5", "0"],
        ["2025-11-20T22:00:00Z", "SAN-02", "santiago", "rain_mm", "1.3", "0"]]


def test_names_outside_the_contract_are_refused(influxd: Influxd, db: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["query", "--url", influxd.url, "--db", db, "--start", str(HOUR),
                 "--station", "x' OR station =~ /.*/ --"])
    assert code == 2
    assert "invalid station" in capsys.readouterr().err


def test_a_missing_database_is_an_error(influxd: Influxd,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["query", "--url", influxd.url, "--db", "no_such_db", "--start", str(HOUR)])
    assert code == 1
    assert "database not found" in capsys.readouterr().err


def test_a_point_not_written_whole_is_kept_and_said_once(
        influxd: Influxd, db: str, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """A point with a value and no flags is not one the ingest wrote (its points have every
    field; one it is writing as we read shows in part only for a moment): asked for again,
    then kept as InfluxDB holds it, with one line saying so. Its flags are unknown, not 0:
    null in `query`'s JSON, an empty cell in `export`'s CSV."""
    V1Writer(influxd.url, db).write([
        f"readings,basin=santiago,channel=stage_m,station=SAN-01 value=2.5 {HOUR + 2700}"])
    out = run(influxd, db, capsys, "--station", "SAN-01", "--channel", "stage_m",
              "--format", "json")
    assert [(r["time"], r["value"], r["flags"]) for r in as_json(out)][2:4] == [
        ("2025-11-20T22:30:00Z", Decimal("9.9"), 16),
        ("2025-11-20T22:45:00Z", Decimal("2.5"), None)]
    said = ("InfluxDB still shows points in part after 20 tries: 1, the first SAN-01 stage_m "
            f"at {HOUR + 2700} without flags; kept as InfluxDB holds them")
    assert [r.getMessage() for r in caplog.records] == [said]
    caplog.clear()
    assert main(["export", "--url", influxd.url, "--db", db, "--station", "SAN-01",
                 "--start", str(HOUR), "--end", str(HOUR + 7200), "--format", "csv-long"]) == 0
    rows = [r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))
            if r["channel"] == "stage_m"]
    assert [(r["value"], r["flags"], r["flag_names"]) for r in rows][2:4] == [
        ("9.9", "16", "spike"), ("2.5", "", "")]
    assert [r.getMessage() for r in caplog.records] == [  # export asks for seq too
        said.replace("without flags", "without flags, seq")]
