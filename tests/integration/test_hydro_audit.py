"""`watershed audit` and `watershed correct` on a record that went through the pipeline, with
the gateway's loss ledger read from its retained health on the real broker: lost slots have
their cause, a power cut's unsampled slots are "not sampled" when the station reported the gap
(firmware/gap.py, channel not_sampled_s), else unaccounted (exit 1) until a hydrologist marks
the period; corrections keep the original and show in query, export and plot."""

from __future__ import annotations

import csv
import io

import pytest

from watershed.cli import main
from watershed.hydro.cli_common import Source
from watershed.hydro.plot import hydrograph
from watershed.hydro.registry import load_registry
from watershed.hydro.series import load_station

from watershed.contracts.mqtt import ReadingsMessage, encode_readings

from .hydro_record import HOURS, SPIKE_AT, T0, Record, _count, record, san04_readings
from .test_ingest_service import wait_for

pytestmark = pytest.mark.integration
__all__ = ["record"]
RANGE = ["--start", "2025-11-20T00:00:00Z", "--end", "2025-11-20T06:00:00Z"]


def audit(record: Record, capsys: pytest.CaptureFixture[str], station: str) -> tuple[int, str]:
    code = main(["audit", "--config", str(record.config), "--station", station, *RANGE])
    return code, capsys.readouterr().out


def table(out: str) -> dict[str, dict[str, str]]:
    lines = out.splitlines()
    header = lines[1].split()
    rows = {}
    for line in lines[2:]:
        cells = line.split()
        if len(cells) != len(header):
            break
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def test_lost_slots_have_their_cause_and_the_record_is_complete(
        record: Record, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = audit(record, capsys, "SAN-01")
    assert code == 0, out
    rows = table(out)
    assert {k: rows["stage_m"][k] for k in ("expected", "stored", "lost", "unaccounted")} == {
        "expected": "24", "stored": "20", "lost": "4", "unaccounted": "0"}
    assert (rows["rain_mm"]["stored"], rows["rain_mm"]["missing"]) == ("23", "1")
    assert rows["battery_v"]["expected"] == "6" and rows["stage_m"]["complete"] == "83.3%"
    assert f"seq: 1..{HOURS * 9}, 4 missing" in out
    assert "loss ledger of gw-zamora (all time): gone_from_station 4, total 4" in out
    assert out.rstrip().endswith("COMPLETE: 0 slots unaccounted for")


def test_a_power_cut_is_unaccounted_until_the_period_is_marked(
        record: Record, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = audit(record, capsys, "SAN-03")
    assert code == 1, out
    assert table(out)["rain_mm"]["unaccounted"] == "4"
    assert "unaccounted: rain_mm 2025-11-20T01:00:00Z: no reading, no seq missing" in out
    assert "INCOMPLETE: 4 slots unaccounted for" in out
    assert main(["correct", "flag", "--config", str(record.config), "--station", "SAN-03",
                 "--channel", "rain_mm", "--start", "2025-11-20T01:00:00Z",
                 "--end", "2025-11-20T02:00:00Z", "--flags", "missing", "--who", "ana",
                 "--why", "power cut: battery replaced"]) == 0
    capsys.readouterr()
    code, out = audit(record, capsys, "SAN-03")
    assert code == 0, out
    assert table(out)["rain_mm"]["marked"] == "4"
    assert "+missing by ana at" in out and "power cut: battery replaced" in out


def test_a_flag_and_an_unflag_keep_the_original(record: Record,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--config", str(record.config), "--station", "SAN-01", "--channel", "stage_m"]
    assert main(["correct", "unflag", *base, "--at", str(SPIKE_AT), "--flags", "spike",
                 "--who", "ana", "--why", "real flood peak, checked on site"]) == 0
    assert main(["correct", "flag", *base, "--start", "2025-11-20T04:00:00Z",
                 "--end", "2025-11-20T05:00:00Z", "--who", "ana",
                 "--why", "sensor fouled"]) == 0
    assert main(["correct", "flag", *base, "--at", str(T0), "--start", str(T0),
                 "--why", "x"]) == 2
    capsys.readouterr()
    assert main(["query", *base, *RANGE, "--format", "csv"]) == 0
    rows = {r["time"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    spike = rows["2025-11-20T01:30:00Z"]
    assert (spike["value"], spike["flags"], spike["corrected_flags"]) == ("3.912", "16", "0")
    assert "-spike by ana" in spike["correction"] and "flood peak" in spike["correction"]
    fouled = rows["2025-11-20T04:15:00Z"]
    assert (fouled["flags"], fouled["corrected_flags"]) == ("0", "4")
    assert rows["2025-11-20T03:45:00Z"]["corrected_flags"] == ""
    # --clean follows the corrections: the peak is in, the fouled hour out
    assert main(["query", *base, *RANGE, "--format", "csv", "--clean"]) == 0
    clean = {r["time"] for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert "2025-11-20T01:30:00Z" in clean and "2025-11-20T04:15:00Z" not in clean
    # export: both flags; plot: the peak is back on the line, the fouled hour marked suspect
    assert main(["export", *base, *RANGE]) == 0
    exported = {r["time"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert (exported["2025-11-20T04:15:00Z"]["flag_names"],
            exported["2025-11-20T04:15:00Z"]["corrected_flags"]) == ("", "4")
    src = Source(record.influx_url, record.database, "", "", "", load_registry(record.registry))
    fig = hydrograph([load_station(src, "SAN-01", T0, T0 + HOURS * 3600)])
    [line] = [a for ax in fig.axes for a in ax.lines if a.get_gid() == "SAN-01/stage_m"]
    assert 3.912 in list(line.get_ydata())
    assert [c for ax in fig.axes for c in ax.collections
            if c.get_gid() == "SAN-01/stage_m/flag/suspect"]
    assert main(["correct", "list", "--config", str(record.config), "--station", "SAN-01",
                 *RANGE]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 and "sensor fouled" in listed[1]


def test_a_power_cut_the_station_reported_is_not_sampled_and_complete(
        record: Record, capsys: pytest.CaptureFixture[str]) -> None:
    readings = san04_readings()
    before = _count(record.influx_url, record.database)
    record.setup.publish(encode_readings(ReadingsMessage("gw-zamora", "SAN-04", "santiago",
                                                         tuple(readings))),
                         record.setup.topics.readings("gw-zamora", "SAN-04"))
    wait_for(lambda: _count(record.influx_url, record.database) >= before + len(readings), 20,
             "SAN-04's points")
    code, out = audit(record, capsys, "SAN-04")
    assert code == 0, out
    rain = table(out)["rain_mm"]
    assert {k: rain[k] for k in ("expected", "stored", "not_sampled", "unaccounted")} == {
        "expected": "24", "stored": "20", "not_sampled": "4", "unaccounted": "0"}
    assert ("not sampled (the station's report): 2025-11-20T01:00:00Z .. "
            "2025-11-20T01:58:20Z (3500 s: power cut or reboot)") in out
    assert f"seq: 1..{len(readings)}, 0 missing" in out
    # a range that ends inside the cut: the report, made after it, still covers its slots
    code = main(["audit", "--config", str(record.config), "--station", "SAN-04",
                 "--start", "2025-11-20T00:00:00Z", "--end", "2025-11-20T01:30:00Z"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert (table(out)["rain_mm"]["stored"], table(out)["rain_mm"]["not_sampled"]) == ("4", "2")
