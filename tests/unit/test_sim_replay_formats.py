"""Replay readers of real records in their own formats (CSV, Campbell TOA5, iMHEA rain and
level logs, plain tip lists): the samples in scenarios/data (SOURCES.md says where each comes
from), line endings, flags, missing values, and bad rows refused with file:line and what."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from watershed_sim.replay import ReplayError, TipLog, read_csv, read_tip_log, read_toa5
from watershed_sim.replay_imhea import read_imhea, read_imhea_level, read_imhea_rain
from tests.unit.test_sim_scenario import GOOD
from watershed_sim.scenario import ScenarioError, parse_scenario

DATA = Path(__file__).resolve().parents[2] / "scenarios" / "data"
IMHEA_RAIN = DATA / "iMHEA_PIU_04_PO_03_raw_2013-10-12.csv"
IMHEA_LEVEL = DATA / "iMHEA_CHA_02_HS_01_raw_2013-08-15.csv"
TIPS = DATA / "iMHEA_PIU_04_PO_03_tips_2013-10-12.txt"
NOAA_CSV = DATA / "noaa_9454240_air_temperature.csv"
CR800_TOA5 = DATA / "cr800_halligan_remotetable.dat"
PERU = timezone(timedelta(hours=-5))


def at(text: str, zone: timezone = PERU) -> int:
    """Unix seconds of an iMHEA ``dd/mm/yyyy HH:MM:SS`` local time."""
    return int(datetime.strptime(text, "%d/%m/%Y %H:%M:%S").replace(tzinfo=zone).timestamp())


def write(path: Path, lines: list[str], ending: str = "\n") -> Path:
    path.write_bytes(ending.join(lines).encode() + ending.encode())
    return path


def refused(match: str, read, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ReplayError, match=match):
        read(*args, **kwargs)


# --- iMHEA rain gauge logs ------------------------------------------------------------------


def test_imhea_rain_sample_reads_tips_and_skips_logger_events_and_edits() -> None:
    raw = IMHEA_RAIN.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\n" not in raw  # BOM, CR line endings
    log = read_imhea(IMHEA_RAIN, utc_offset_h=-5)
    assert isinstance(log, TipLog)
    assert log.mm_per_tip == Decimal("0.2")
    # 277 rows: x, x, D, I, x, x (events and edits), 269 tips, V (a gap), P 0 mm (relaunch)
    assert len(log.tips) == 269
    assert log.tips[0] == at("12/10/2013 15:38:12") and log.tips[-1] == at("21/10/2013 13:21:25")
    assert log.start == at("12/10/2013 12:40:00")  # its first row, an x: the record begins
    assert log.end == at("21/10/2013 13:21:25") + 1
    assert log.gaps == ((at("14/10/2013 20:00:01"), at("21/10/2013 13:15:01")),)
    assert log.tips == read_tip_log(TIPS, "0.2").tips  # the tips sample: its tip times


def test_imhea_rain_over_a_gap_or_outside_the_record_is_unknown_not_zero() -> None:
    log = read_imhea_rain(IMHEA_RAIN, utc_offset_h=-5)
    storm = at("14/10/2013 18:45:00"), at("14/10/2013 19:45:00")
    assert log.rain_mm(*storm) == Decimal("0.2") * log.tips_between(*storm) == Decimal("2.8")
    assert log.rain_mm(at("12/10/2013 13:00:00"), at("12/10/2013 15:00:00")) == 0  # dry, known
    assert log.rain_mm(at("14/10/2013 19:45:00"), at("14/10/2013 20:15:00")) is None  # V gap
    assert log.rain_mm(at("18/10/2013 00:00:00"), at("18/10/2013 01:00:00")) is None
    assert log.rain_mm(at("12/10/2013 12:00:00"), at("12/10/2013 13:00:00")) is None  # before
    assert log.rain_mm(at("21/10/2013 13:00:00"), at("21/10/2013 14:00:00")) is None  # gap end
    assert log.rain_mm(at("21/10/2013 13:20:00"), at("21/10/2013 14:00:00")) is None  # after


def test_a_tip_log_shifted_keeps_its_tips_gaps_and_end_in_step() -> None:
    log = read_imhea_rain(IMHEA_RAIN, utc_offset_h=-5)
    moved = log.shifted(1_800_000_000)
    delta = 1_800_000_000 - log.begins
    assert moved.start == 1_800_000_000 and moved.mm_per_tip == log.mm_per_tip
    assert moved.tips == tuple(t + delta for t in log.tips)
    assert moved.gaps == tuple((a + delta, b + delta) for a, b in log.gaps)
    assert moved.end == log.end + delta
    assert moved.rain_mm(1_800_000_000, 1_800_000_000 + 86400) == log.rain_mm(
        log.begins, log.begins + 86400)


@pytest.mark.parametrize("ending", ["\r", "\n", "\r\n"], ids=["CR", "LF", "CRLF"])
def test_imhea_rain_reads_alike_whatever_the_line_endings(tmp_path: Path, ending: str) -> None:
    lines = ["\ufeffDate,Event mm,Flag", "01/02/2014 10:00:00,0,I", "01/02/2014 10:05:00,0.1,",
             '01/02/2014 10:06:00,0,"d, X"', "01/02/2014 10:07:00,0.1,p", "01/02/2014 10:08:00,0,",
             "01/02/2014 10:09:00,0.1,", "01/02/2014 10:10:00,,v", "01/02/2014 11:00:00,0,D",
             "01/02/2014 11:01:00,0.1,"]
    log = read_imhea_rain(write(tmp_path / "rain.csv", lines, ending))
    utc = timezone.utc
    assert log.tips == (at("01/02/2014 10:05:00", utc), at("01/02/2014 10:09:00", utc),
                        at("01/02/2014 11:01:00", utc))  # P, 0 mm and flagged rows: no tip
    assert log.gaps == ((at("01/02/2014 10:10:00", utc), at("01/02/2014 11:00:00", utc)),)
    assert log.mm_per_tip == Decimal("0.1")
    bigger = write(tmp_path / "rain.csv", [*lines, "01/02/2014 11:02:00,0.2,"], ending)
    refused(r"rain.csv:11: a tip of 0.2 mm, but 0.1 mm at .*rain.csv:3: one row per tip",
            read_imhea_rain, bigger)


@pytest.mark.parametrize(("row", "what"), [
    ("02/01/2014 10:00:00,0.2,A", r":3: unknown flag 'A' \(flags are I, D, X, P, V\)"),
    ("02/01/2014 10:00:00,,", r":3: no 'Event mm' on an unflagged row"),
    ("02/01/2014 10:00:00,0.2mm,", r":3: '0.2mm' is not a number"),
    ("02/01/2014 10:00:00,-0.2,", r":3: '-0.2' mm is below 0"),
    ("2014-01-02 10:00:00,0.2,", r":3: '2014-01-02 10:00:00' is not a time \(%d/%m/%Y"),
    ("01/01/2014 09:00:00,0.2,", r":3: 01/01/2014 09:00:00 is before the row above "
                                 r"\(.*log.csv:2\)"),
    ("02/01/2014 10:00:00,0.2", r":3: 2 fields, the header has 3"),
    ("02/01/2014 10:00:00,0.2,,x", r":3: 4 fields, the header has 3"),
])
def test_a_bad_imhea_rain_row_is_refused_with_its_line(tmp_path: Path, row: str,
                                                       what: str) -> None:
    path = write(tmp_path / "log.csv", ["Date,Event mm,Flag", "01/01/2014 10:00:00,0,I", row],
                 "\r")
    refused("log.csv" + what, read_imhea_rain, path)


def test_imhea_trailing_commas_are_no_columns(tmp_path: Path) -> None:
    # Some published logs end every line with a comma (PIU, HMT): an empty last column.
    path = write(tmp_path / "log.csv", ["Date,Event mm,Flag,", "01/01/2014 10:00:00,0,I,",
                                        "01/01/2014 10:01:00,0.2,,"])
    assert read_imhea_rain(path).tips == (at("01/01/2014 10:01:00", timezone.utc),)


def test_an_imhea_rain_log_without_tips_has_no_bucket_size(tmp_path: Path) -> None:
    path = write(tmp_path / "dry.csv", ["Date,Event mm,Flag", "01/01/2014 10:00:00,0,I",
                                        "05/01/2014 10:00:00,0,D"])
    refused(r"dry.csv: no tips, so no bucket size", read_imhea_rain, path)


# --- iMHEA level logger logs ----------------------------------------------------------------


def test_imhea_level_sample_keeps_d_rows_and_leaves_p_rows_missing() -> None:
    raw = IMHEA_LEVEL.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and raw.count(b"\r\n") == 1 + 144  # BOM, CRLF
    level = read_imhea(IMHEA_LEVEL, "Level cm", utc_offset_h=-5)
    assert len(level.times) == 142 and level.step_s == 1800
    assert level.times[0] == at("15/08/2013 00:00:00")
    assert level.values[0] == Decimal("20.9") and level.values[-1] == Decimal("23.7")
    assert level.value_at(at("16/08/2013 11:00:00")) == Decimal("22.4")  # flagged D: kept
    assert level.gaps() == [at("16/08/2013 11:30:00"), at("16/08/2013 12:00:00")]  # I,P and P
    assert level.value_at(at("16/08/2013 11:30:00")) is None
    flow = read_imhea_level(IMHEA_LEVEL, "Flow l/s", utc_offset_h=-5)
    assert flow.times == level.times and flow.values[0] == Decimal("14.9221")


@pytest.mark.parametrize("ending", ["\r", "\n", "\r\n"], ids=["CR", "LF", "CRLF"])
def test_imhea_level_gaps_and_empty_values_are_missing(tmp_path: Path, ending: str) -> None:
    path = write(tmp_path / "level.csv", [
        "Date,Level cm,Flow l/s,Flag", "29/06/2011 08:30:00,8.22,2.6540,I",
        "29/06/2011 08:35:00,7.92,2.4184,", "29/06/2011 08:40:00,7.92,,D",
        "29/06/2011 08:45:00,,,V", "29/06/2011 09:00:00,13.82,9.7273,I",
        "29/06/2011 09:05:00,13.80,9.7000,x", "29/06/2011 09:10:00,13.81,9.7100,"], ending)
    level = read_imhea_level(path, "Level cm")
    utc = timezone.utc
    assert level.values == (Decimal("8.22"), Decimal("7.92"), Decimal("7.92"), Decimal("13.82"),
                            Decimal("13.81"))
    assert level.gaps() == [at(f"29/06/2011 {hm}:00", utc)
                            for hm in ("08:45", "08:50", "08:55", "09:05")]
    flow = read_imhea_level(path, "Flow l/s")
    assert at("29/06/2011 08:40:00", utc) in flow.gaps()  # D row without a flow value


def test_imhea_level_logs_are_refused_with_what_is_wrong(tmp_path: Path) -> None:
    level = write(tmp_path / "level.csv", ["Date,Flow l/s,Flag", "01/01/2014 10:00:00,4.8,I"])
    refused(r"level.csv:1: a level logger log needs a column: 'Flow l/s'", read_imhea, level)
    refused(r"level.csv:1: no column 'Level cm' in the header \(Flow l/s\)", read_imhea,
            level, "Level cm")
    refused(r"2013-10-12.csv:1: a rain gauge log has no column 'Level cm'", read_imhea,
            IMHEA_RAIN, "Level cm")
    totals = write(tmp_path / "totals.csv", ["Date,Rainfall mm,Flag", "04/09/2010 11:00:00,0,I"])
    refused(r"totals.csv:1: not an iMHEA level logger log", read_imhea, totals, "Rainfall mm")
    refused(r"totals.csv:1: not an iMHEA rain gauge log", read_imhea_rain, totals)
    twice = write(tmp_path / "twice.csv", ["Date,Level cm,Flag", "01/01/2014 10:00:00,4.8,",
                                           "01/01/2014 10:00:00,4.9,"])
    refused(r"twice.csv:3: 4.9 at 2014-01-01 10:00:00\+00:00, and 4.8 at the same time "
            r"\(.*twice.csv:2\)", read_imhea_level, twice, "Level cm")


# --- plain tip lists ------------------------------------------------------------------------


def test_tips_sample_is_the_imhea_sample_s_tips_in_iso_8601() -> None:
    log = read_tip_log(TIPS, Decimal("0.2"))
    assert len(log.tips) == 269 and log.begins == log.tips[0] == at("12/10/2013 15:38:12")
    assert log.start is log.end is None and log.gaps == ()  # a plain list says nothing of them
    assert log.rain_mm(log.tips[0] - 3600, log.tips[0]) == 0
    assert log.rain_mm(at("14/10/2013 18:45:00"), at("14/10/2013 19:45:00")) == Decimal("2.8")


@pytest.mark.parametrize("ending", ["\r", "\n", "\r\n"], ids=["CR", "LF", "CRLF"])
def test_tips_read_alike_whatever_the_line_endings(tmp_path: Path, ending: str) -> None:
    path = write(tmp_path / "tips.txt", ["# a 0.5 mm bucket", "2024-03-01T10:00:00Z",
                                         "", "1709287230.5  # Unix seconds", "2024-03-01 05:01"],
                 ending)
    log = read_tip_log(path, "0.5", utc_offset_h=-5)
    assert log.tips == (1709287200, 1709287230.5, 1709287260)
    assert log.rain_mm(1709287200, 1709287261) == Decimal("1.5")


@pytest.mark.parametrize(("lines", "mm", "what"), [
    (["2024-03-01T10:00:00Z", "2024-03-01T09:59:00Z"], "0.2",
     r"tips.txt:2: '2024-03-01T09:59:00Z' is before the tip above it"),
    (["2024-03-01T10:00:00Z", "# storm", "10:05"], "0.2",
     r"tips.txt:3: '10:05' is not a time \(ISO 8601 or Unix seconds\)"),
    (["2024-03-01T10:00:00Z", "nan"], "0.2",
     r"tips.txt:2: 'nan' is not a time \(ISO 8601 or Unix seconds\)"),
    (["# nothing"], "0.2", r"tips.txt: no tips"),
    (["2024-03-01T10:00:00Z"], "0", r"tips.txt: mm_per_tip must be a number above 0, not '0'"),
    (["2024-03-01T10:00:00Z"], "x", r"tips.txt: mm_per_tip must be a number above 0"),
])
def test_a_bad_tip_list_is_refused_with_its_line(tmp_path: Path, lines: list[str], mm: str,
                                                 what: str) -> None:
    refused(what, read_tip_log, write(tmp_path / "tips.txt", lines), mm)


# --- CSV and TOA5 samples -------------------------------------------------------------------


def test_csv_sample_is_exact_and_keeps_the_hour_not_recorded() -> None:
    series = read_csv(NOAA_CSV, "v", time_column="t")
    first = int(datetime(2009, 5, 22, tzinfo=timezone.utc).timestamp())
    assert len(series.times) == 95 and series.times[0] == first and series.step_s == 3600
    assert series.values[0] == Decimal("10.8") and series.values[-1] == Decimal("15.5")
    assert series.gaps() == [first + 77 * 3600]  # 2009-05-25 05:00 UTC
    assert series.value_at(first + 77 * 3600) is None


def test_csv_with_crlf_and_missing_values(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", ["t,v", "2009-05-22T00:00:00Z,10.8", "2009-05-22T01:00:00Z,",
                                      "2009-05-22T02:00:00Z,-0.4", "2009-05-22T03:00:00Z,0"],
                 "\r\n")
    series = read_csv(path, "v", time_column="t")
    assert series.values == (Decimal("10.8"), Decimal("-0.4"), Decimal("0"))
    assert series.gaps() == [series.times[0] + 3600]  # the empty value: missing, not 0
    refused(r"t.csv:1: no column 'time' in the header", read_csv, path, "v")


@pytest.mark.parametrize("when", ["inf", "-inf", "nan"])
def test_a_csv_time_that_is_no_instant_is_refused_with_its_line(tmp_path: Path, when: str) -> None:
    path = write(tmp_path / "t.csv", ["t,v", "2009-05-22T00:00:00Z,10.8", f"{when},10.9"], "\n")
    refused(rf"t.csv:3: '{when}' is not a time", read_csv, path, "v", time_column="t")


def test_toa5_sample_merges_rows_written_twice_and_keeps_skipped_minutes_missing() -> None:
    lines = CR800_TOA5.read_text().splitlines()
    assert len(lines) == 4 + 360
    stage = read_toa5(CR800_TOA5, "Stage")
    first = int(datetime(2011, 1, 27, 13, 16, tzinfo=timezone.utc).timestamp())
    assert len(stage.times) == 358 and stage.step_s == 60 and stage.times[0] == first
    assert stage.gaps() == [first + 3 * 60, first + 260 * 60]  # 13:19 and 17:36
    assert stage.value_at(first + 2 * 60) == Decimal("24.54")  # 13:18, written twice
    assert stage.values[-1] == Decimal("23.22")


def test_toa5_two_values_at_one_time_are_refused_naming_both_lines(tmp_path: Path) -> None:
    lines = CR800_TOA5.read_text().splitlines()[:8]
    lines[7] = lines[7].replace(",24.54,", ",24.55,")  # the second 13:18 row, now different
    path = write(tmp_path / "dup.dat", lines, "\r\n")
    refused(r"dup.dat:8: 24.55 at 2011-01-27 13:18:00\+00:00, and 24.54 at the same time "
            r"\(.*dup.dat:7\)", read_toa5, path, "Stage")


# --- [[replay]] in a scenario ---------------------------------------------------------------


def scenario_with(replay: str) -> str:
    """The scenario tests' good scenario with one more [[replay]] table (or several)."""
    return f"{GOOD}\n[[replay]]\n{replay}\n"


def problems(replay: str) -> list[str]:
    with pytest.raises(ScenarioError) as e:
        parse_scenario(scenario_with(replay), DATA.parent / "s.toml")
    return e.value.problems


def test_scenario_replays_an_imhea_rain_log_and_a_tip_list_shifted_to_its_start() -> None:
    s = parse_scenario(scenario_with(
        'name = "piu"\nformat = "imhea"\npath = "data/iMHEA_PIU_04_PO_03_raw_2013-10-12.csv"\n'
        'utc_offset_h = -5\n\n[[replay]]\nname = "tips"\nformat = "tips"\n'
        'path = "data/iMHEA_PIU_04_PO_03_tips_2013-10-12.txt"\nmm_per_tip = 0.2\n'
        '\n[[replay]]\nname = "level"\nformat = "imhea"\ncolumn = "Level cm"\n'
        'path = "data/iMHEA_CHA_02_HS_01_raw_2013-08-15.csv"\nalign = "recorded"\n'
        'utc_offset_h = -5'), DATA.parent / "s.toml")
    piu, tips, level = s.replays["piu"], s.replays["tips"], s.replays["level"]
    assert isinstance(piu, TipLog) and isinstance(tips, TipLog)
    assert piu.begins == s.start and tips.begins == s.start
    assert tips.mm_per_tip == Decimal("0.2") and len(tips.tips) == len(piu.tips) == 269
    assert tips.tips[0] == s.start  # a plain list begins at its first tip
    assert piu.tips[0] == s.start + at("12/10/2013 15:38:12") - at("12/10/2013 12:40:00")
    assert level.times[0] == at("15/08/2013 00:00:00")  # recorded: not moved


@pytest.mark.parametrize(("replay", "what"), [
    ('name = "t"\nformat = "tips"\npath = "data/iMHEA_PIU_04_PO_03_tips_2013-10-12.txt"',
     r"s.toml:\d+: replay\[0\].mm_per_tip: required"),
    ('name = "t"\nformat = "tips"\npath = "data/iMHEA_PIU_04_PO_03_tips_2013-10-12.txt"\n'
     'mm_per_tip = "a lot"', r"replay\[0\].mm_per_tip: expected a number of mm above 0"),
    ('name = "t"\nformat = "tips"\npath = "data/iMHEA_PIU_04_PO_03_tips_2013-10-12.txt"\n'
     'mm_per_tip = 0.2\ncolumn = "v"', r"replay\[0\].column: a tip log has no columns"),
    ('name = "c"\nformat = "csv"\npath = "data/noaa_9454240_air_temperature.csv"\ncolumn = "v"\n'
     'mm_per_tip = 0.2', r"replay\[0\].mm_per_tip: is for format 'tips' only"),
    ('name = "c"\nformat = "toa5"\npath = "data/cr800_halligan_remotetable.dat"\n'
     'column = "Stage"\ntime_column = "TIMESTAMP"', r"replay\[0\].time_column: is for format "
                                                    r"'csv' only"),
    ('name = "l"\nformat = "imhea"\npath = "data/iMHEA_CHA_02_HS_01_raw_2013-08-15.csv"',
     r"replay\[0\].path: .*iMHEA_CHA_02_HS_01_raw_2013-08-15.csv:1: a level logger log needs "
     r"a column"),
    ('name = "l"\nformat = "imhea"\npath = "data/iMHEA_CHA_02_HS_01_raw_2013-08-15.csv"\n'
     'column = "Level cm"\nbucket = 0.2', r"replay\[0\].bucket: unknown key"),
])
def test_scenario_replay_problems_name_line_and_key(replay: str, what: str) -> None:
    found = problems(replay)
    assert any(re.search(what, p) for p in found), found
