"""`watershed export` on a record that went through the pipeline: every format reads back to the
values and flags InfluxDB holds; the WaterML 2.0 parses with xml.etree (an independent reader)
and carries units, qualifiers and the registry's metadata; local time and water years."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from watershed.cli import main
from watershed.hydro.influxql import query

from tests.fixtures.waterml_schema import schema_errors

from .hydro_record import HOURS, MISSING_RAIN_AT, SPIKE_AT, T0, Record, record

pytestmark = pytest.mark.integration
__all__ = ["record"]
NS = {"wml2": "http://www.opengis.net/waterml/2.0", "gml": "http://www.opengis.net/gml/3.2",
      "om": "http://www.opengis.net/om/2.0", "swe": "http://www.opengis.net/swe/2.0",
      "sams": "http://www.opengis.net/samplingSpatial/2.0",
      "xlink": "http://www.w3.org/1999/xlink", "xsi": "http://www.w3.org/2001/XMLSchema-instance"}
END = T0 + HOURS * 3600


def stored(record: Record, station: str) -> dict[tuple[str, int], tuple[Decimal | None, int]]:
    series = query(record.influx_url, record.database,
                   f"SELECT value, flags FROM readings WHERE station = '{station}' "
                   f"GROUP BY channel")
    return {(tags["channel"], int(r["time"])): (r["value"], int(r["flags"]))
            for tags, rows in series for r in rows}


def export(record: Record, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["export", "--config", str(record.config), "--start", str(T0),
                 "--end", str(END), *args]) == 0
    return capsys.readouterr().out


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def test_csv_long_reads_back_exactly(record: Record, capsys: pytest.CaptureFixture[str]) -> None:
    out = export(record, capsys, "--station", "SAN-01", "--station", "SAN-02")
    rows = list(csv.DictReader(io.StringIO(out)))
    for station in ("SAN-01", "SAN-02"):
        back = {(r["channel"], ts(r["time"])): (Decimal(r["value"]) if r["value"] else None,
                                                int(r["flags"]))
                for r in rows if r["station"] == station}
        assert back == stored(record, station)
    units = {r["channel"]: r["unit"] for r in rows}
    assert units == {"stage_m": "m", "rain_mm": "mm", "battery_v": "V", "discharge_m3s": "m3/s"}
    spike = next(r for r in rows if r["channel"] == "stage_m" and ts(r["time"]) == SPIKE_AT)
    assert spike["flag_names"] == "spike" and spike["seq"]


def test_csv_wide_in_local_time(record: Record, capsys: pytest.CaptureFixture[str]) -> None:
    out = export(record, capsys, "--station", "SAN-01", "--format", "csv-wide", "--tz", "local")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["time"] == "2025-11-19T19:00:00-05:00"
    back = {}
    for r in rows:
        for channel in ("stage_m", "rain_mm", "battery_v", "discharge_m3s"):
            if r[channel] or r[f"{channel}_flags"]:
                back[(channel, ts(r["time"]))] = Decimal(r[channel]) if r[channel] else None
    assert back == {k: v for k, (v, _) in stored(record, "SAN-01").items()}
    missing = next(r for r in rows if ts(r["time"]) == MISSING_RAIN_AT)
    assert (missing["rain_mm"], missing["rain_mm_flags"]) == ("", "missing")


def test_rdb_reads_back_with_metadata(record: Record, capsys: pytest.CaptureFixture[str]) -> None:
    out = export(record, capsys, "--station", "SAN-01", "--format", "rdb")
    header = [ln for ln in out.splitlines() if ln.startswith("#")]
    assert "#    latitude: -3.9702" in header and "#    vertical_datum: EGM96" in header
    assert "#    sensor_elevation_m: 1812.2" in header
    body = [ln.split("\t") for ln in out.splitlines() if not ln.startswith("#")]
    names, formats, data = body[0], body[1], body[2:]
    assert names[:4] == ["agency_cd", "site_no", "datetime", "tz_cd"] and formats[2] == "20d"
    back = {}
    for cells in data:
        row = dict(zip(names, cells))
        when = ts(row["datetime"].replace(" ", "T") + "Z")
        assert row["tz_cd"] == "UTC"
        for channel in ("stage_m", "rain_mm", "battery_v", "discharge_m3s"):
            if row[channel] or row[f"{channel}_cd"]:
                back[(channel, when)] = Decimal(row[channel]) if row[channel] else None
    assert back == {k: v for k, (v, _) in stored(record, "SAN-01").items()}


def test_waterml2_parses_with_units_qualifiers_and_metadata(
        record: Record, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "san01.xml"
    assert "wrote" in export(record, capsys, "--station", "SAN-01", "--format", "waterml2",
                             "-o", str(path))
    assert schema_errors(path.read_text(encoding="utf-8")) == [], "valid against the OGC XSD"
    root = ET.parse(path).getroot()
    assert root.tag == f"{{{NS['wml2']}}}Collection"
    back: dict[tuple[str, int], Decimal | None] = {}
    qualifiers: dict[tuple[str, int], list[str]] = {}
    for obs in root.iterfind("wml2:observationMember/om:OM_Observation", NS):
        channel = obs.find("om:observedProperty", NS).get(f"{{{NS['xlink']}}}title")
        uom = obs.find(".//wml2:DefaultTVPMeasurementMetadata/wml2:uom", NS).get("code")
        assert uom == {"stage_m": "m", "rain_mm": "mm", "battery_v": "V",
                       "discharge_m3s": "m3/s"}[channel]
        pos = obs.find(".//wml2:MonitoringPoint/sams:shape/gml:Point/gml:pos", NS).text
        assert pos == "-3.9702 -79.0725"
        for tvp in obs.iterfind(".//wml2:MeasurementTVP", NS):
            when = ts(tvp.find("wml2:time", NS).text)
            value = tvp.find("wml2:value", NS)
            nil = value.get(f"{{{NS['xsi']}}}nil") == "true"
            back[(channel, when)] = None if nil else Decimal(value.text)
            qualifiers[(channel, when)] = [v.text for v in tvp.iterfind(
                ".//wml2:qualifier/swe:Category/swe:value", NS)]
    assert back == {k: v for k, (v, _) in stored(record, "SAN-01").items()}
    assert qualifiers[("stage_m", SPIKE_AT)] == ["spike"]
    assert qualifiers[("rain_mm", MISSING_RAIN_AT)] == ["missing"]


def test_water_year_and_one_station_per_file(record: Record,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--config", str(record.config), "--station", "SAN-02",
                 "--water-year", "2026", "--format", "csv-wide"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == HOURS * 4  # water year 2026 begins 2025-10-01 (Guayaquil)
    assert main(["export", "--config", str(record.config), "--station", "SAN-02",
                 "--water-year", "2025"]) == 0
    assert capsys.readouterr().out.count("\n") == 1  # the header only
    assert main(["export", "--config", str(record.config), "--station", "SAN-01",
                 "--station", "SAN-02", "--start", str(T0), "--format", "rdb"]) == 2
    assert "takes one --station" in capsys.readouterr().err
