"""`watershed plot` on a record that went through the pipeline: the gap breaks the stage line,
the spike is marked as a spike and kept out of the line, the rating change is drawn, rain hangs
as bars, several stations share a figure, local time on the axis."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib.dates as mdates
import pytest

from watershed.cli import main
from watershed.hydro.cli_common import Source
from watershed.hydro.plot import hydrograph
from watershed.hydro.registry import load_registry
from watershed.hydro.series import load_station

from .hydro_record import GAP, HOURS, SPIKE_AT, T0, Record, record

pytestmark = pytest.mark.integration
__all__ = ["record"]


def artists(fig, gid: str) -> list:
    return [a for ax in fig.axes for a in [*ax.lines, *ax.collections, *ax.patches]
            if a.get_gid() == gid]


def num(ts: int) -> float:
    return mdates.date2num(datetime.fromtimestamp(ts, timezone.utc))


def stations(record: Record, *ids: str) -> list:
    src = Source(record.influx_url, record.database, "", "", "", load_registry(record.registry))
    return [load_station(src, s, T0, T0 + HOURS * 3600) for s in ids]


def test_the_gap_breaks_the_line_and_the_spike_is_marked(record: Record) -> None:
    fig = hydrograph(stations(record, "SAN-01"))
    [line] = artists(fig, "SAN-01/stage_m")
    xs = [mdates.date2num(x) for x in line.get_xdata()]
    ys = list(line.get_ydata())
    i, j = xs.index(num(GAP[0] - 900)), xs.index(num(GAP[-1] + 900))
    assert j > i + 1 and all(math.isnan(y) for y in ys[i + 1:j])  # no line across the gap
    [spike] = artists(fig, "SAN-01/stage_m/flag/spike")
    assert [tuple(o) for o in spike.get_offsets()][0][1] == pytest.approx(3.912)
    assert 3.912 not in ys  # the flagged value is not part of the line
    alone = xs.index(num(SPIKE_AT + 900))  # between the spike and the gap: drawn as a dot
    assert alone in line.get_markevery()
    assert artists(fig, "SAN-01/rating/SAN-01.2")  # the rating change is drawn
    [discharge] = artists(fig, "SAN-01/discharge_m3s")
    assert not any(math.isnan(y) for y in discharge.get_ydata()[:6])  # up to the spike
    assert spike.get_offsets()[0][0] == num(SPIKE_AT)


def test_rain_hangs_as_bars_and_missing_rain_is_marked(record: Record) -> None:
    fig = hydrograph(stations(record, "SAN-01", "SAN-02"))
    bars = artists(fig, "SAN-01/rain_mm")
    assert len(bars) == HOURS * 4 - 1  # one missing
    assert all(b.get_width() < 0 for b in bars)  # each covers the interval ending at its time
    rain_ax = bars[0].axes
    bottom, top = rain_ax.get_ylim()
    assert top == 0 and bottom > 0  # inverted
    assert artists(fig, "SAN-01/rain_mm/flag/missing")
    assert artists(fig, "SAN-02/rain_mm")  # the second station on the same figure
    first, last = bars[0].axes, artists(fig, "SAN-02/rain_mm")[0].axes
    assert last in first.get_shared_x_axes().get_siblings(first)  # one time axis


def test_cli_writes_png_svg_pdf_in_local_time(record: Record, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for suffix, magic in (("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")):
        out = tmp_path / f"hydro.{suffix}"
        assert main(["plot", "--config", str(record.config), "--station", "SAN-01",
                     "--station", "SAN-02", "--start", str(T0),
                     "--end", str(T0 + HOURS * 3600), "--tz", "local", "-o", str(out)]) == 0
        assert out.read_bytes().startswith(magic)
    assert "wrote" in capsys.readouterr().out
    assert main(["plot", "--config", str(record.config), "--station", "SAN-01",
                 "--start", str(T0), "-o", str(tmp_path / "x.jpg")]) == 2
    assert main(["plot", "--config", str(record.config), "--station", "NOPE-1",
                 "--start", str(T0), "-o", str(tmp_path / "x.png")]) == 2
    assert "known: SAN-01, SAN-02, SAN-03" in capsys.readouterr().err
    fig = hydrograph(stations(record, "SAN-01"), ZoneInfo("America/Guayaquil"))
    assert any("America/Guayaquil, UTC-05:00" in ax.get_xlabel() for ax in fig.axes)
    [line] = artists(fig, "SAN-01/stage_m")
    assert line.get_xdata()[0].utcoffset().total_seconds() == -5 * 3600
