"""`watershed plot`: a hydrograph per station to PNG, SVG or PDF (matplotlib, Agg backend).

Per station, on one time axis: rain as an inverted bar hyetograph above (bars hang from the
top, one per reading's interval), stage (left axis) and discharge (right axis) below, with a
dashed line where the rating that derived discharge changes. A reading with a quality flag is
left out of the line and drawn as a marker of its kind; a missing reading, or a step longer
than the channel's interval, breaks the line (a NaN): a missing stretch is never bridged.
Several stations stack on one figure, sharing the time axis. Times in UTC or a basin's local
time. Each artist carries a gid (``SAN-01/stage_m``, ``SAN-01/stage_m/flag/spike``,
``SAN-01/rating/SAN-01.2``, ``SAN-01/rain_mm``) so that a test, or a caller, can find it.
"""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display (set before pyplot is imported)
import matplotlib.dates as mdates  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..contracts.channels import TOTALS  # noqa: E402
from ..contracts.influx import DISCHARGE_CHANNEL  # noqa: E402
from .flags import defect_kinds  # noqa: E402
from .series import Point, StationSeries  # noqa: E402

FORMATS = ("png", "svg", "pdf")
STAGE = "stage_m"
MARKERS = {"missing": "x", "out_of_range": "^", "suspect": "D", "clock_unsynced": "s",
           "spike": "v", "flatline": "_", "clock_jump": ">"}
COLOURS = {"missing": "grey", "out_of_range": "tab:red", "suspect": "tab:orange",
           "clock_unsynced": "tab:purple", "spike": "crimson", "flatline": "tab:brown",
           "clock_jump": "tab:pink"}


def hydrograph(stations: list[StationSeries], zone: tzinfo = timezone.utc,
               intervals: dict[tuple[str, str], int] | None = None, title: str = "") -> Figure:
    """The figure: two rows per station (rain above, stage/discharge below), one shared time
    axis. ``intervals``: (station, channel) -> sampling interval, s (else the series' usual
    step)."""
    intervals = intervals or {}
    rows: list[tuple[StationSeries, str]] = []
    for st in stations:
        if any(ch in TOTALS for ch in st.channels):
            rows.append((st, "rain"))
        if STAGE in st.channels or DISCHARGE_CHANNEL in st.channels:
            rows.append((st, "flow"))
    heights = [1 if kind == "rain" else 2.5 for _, kind in rows] or [1]
    fig = Figure(figsize=(11, 1.2 + 2.0 * sum(heights) / 1.75), layout="constrained")
    axes = fig.subplots(len(heights), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, (st, kind) in zip(axes, rows):
        if kind == "rain":
            _rain(ax, st, intervals, zone)
        else:
            _flow(ax, st, intervals, zone)
    if not rows:
        axes[0].text(0.5, 0.5, "no readings in this range", ha="center", va="center",
                     transform=axes[0].transAxes)
    bottom = axes[-1]
    locator = mdates.AutoDateLocator(tz=zone)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=zone))
    bottom.set_xlabel(f"time ({_zone_name(zone)})")
    if title:
        fig.suptitle(title)
    return fig


def _flow(ax: Any, st: StationSeries, intervals: dict[tuple[str, str], int],
          zone: tzinfo) -> None:
    handles = []
    if STAGE in st.channels:
        handles += _series(ax, st, STAGE, intervals, zone, "tab:blue", "stage (m)")
        ax.set_ylabel(f"{st.station}\nstage (m)")
    if DISCHARGE_CHANNEL in st.channels:
        q_ax = ax.twinx()
        handles += _series(q_ax, st, DISCHARGE_CHANNEL, intervals, zone, "tab:green",
                           "discharge (m³/s)")
        q_ax.set_ylabel("discharge (m³/s)")
        handles += _rating_changes(ax, st, zone)
    ax.grid(True, alpha=0.3)
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize="small")


def _series(ax: Any, st: StationSeries, channel: str, intervals: dict[tuple[str, str], int],
            zone: tzinfo, colour: str, label: str) -> list[Any]:
    points = st.channels[channel]
    # a point with no flags (not written by the ingest) is drawn as a good one
    good = [p for p in points if p.value is not None and not defect_kinds(p.effective_flags)]
    step = intervals.get((st.station, channel)) or usual_step(points)
    xs, ys = broken_line(good, step, zone)
    # a reading with a gap on both sides would be an invisible line of length 0: give it a dot
    alone = [i for i, y in enumerate(ys) if not math.isnan(y)
             and (i == 0 or math.isnan(ys[i - 1])) and (i == len(ys) - 1 or math.isnan(ys[i + 1]))]
    [line] = ax.plot(xs, ys, color=colour, lw=1.3, label=label, marker="o", markersize=3,
                     markevery=alone)
    line.set_gid(f"{st.station}/{channel}")
    return [line, *_flag_markers(ax, st, channel, points, zone, colour)]


def _flag_markers(ax: Any, st: StationSeries, channel: str, points: list[Point], zone: tzinfo,
                  colour: str) -> list[Any]:
    """A marker per flagged reading, of its kind (a defect other than missing if it has one);
    one without a value sits on the panel's bottom edge."""
    groups: dict[tuple[str, bool], list[Point]] = {}
    for p in points:
        kinds = defect_kinds(p.effective_flags)
        if kinds:
            kind = next((k for k in kinds if k != "missing"), kinds[0])
            groups.setdefault((kind, p.value is None), []).append(p)
    handles = []
    for (kind, valueless), flagged in groups.items():
        style = {"marker": MARKERS.get(kind, "o"), "color": COLOURS.get(kind, colour),
                 "zorder": 3, "label": f"{channel} {kind}"}
        xs = [_when(p.time, zone) for p in flagged]
        if valueless:
            marks = ax.scatter(xs, [0.0] * len(xs), transform=ax.get_xaxis_transform(),
                               clip_on=False, **style)
        else:
            marks = ax.scatter(xs, [float(p.value) for p in flagged if p.value is not None],
                               **style)
        marks.set_gid(f"{st.station}/{channel}/flag/{kind}")
        handles.append(marks)
    return handles


def _rating_changes(ax: Any, st: StationSeries, zone: tzinfo) -> list[Any]:
    handles: list[Any] = []
    last = None
    for p in st.channels.get(DISCHARGE_CHANNEL, []):
        if p.rating_id and p.rating_id != last:
            if last is not None:
                v = ax.axvline(_when(p.time, zone), color="grey", ls="--", lw=1)
                v.set_gid(f"{st.station}/rating/{p.rating_id}")
                ax.annotate(f"rating {p.rating_id}", (_when(p.time, zone), 1.0),
                            xycoords=("data", "axes fraction"), xytext=(3, -12),
                            textcoords="offset points", fontsize="small", color="grey")
                if not handles:
                    v.set_label("rating change")
                    handles.append(v)
            last = p.rating_id
    return handles


def _rain(ax: Any, st: StationSeries, intervals: dict[tuple[str, str], int],
          zone: tzinfo) -> None:
    for channel in (ch for ch in st.channels if ch in TOTALS):
        points = st.channels[channel]
        step = intervals.get((st.station, channel)) or usual_step(points)
        good = [p for p in points if p.value is not None and not defect_kinds(p.effective_flags)]
        # a total covers the interval that ends at its time
        depths = [float(p.value) for p in good if p.value is not None]
        bars = ax.bar([_when(p.time, zone) for p in good], depths,
                      width=-timedelta(seconds=step), align="edge", color="tab:blue",
                      alpha=0.7, label="rain (mm)")
        for bar in bars.patches:  # a container has no gid of its own
            bar.set_gid(f"{st.station}/{channel}")
        handles = [bars, *_flag_markers(ax, st, channel, points, zone, "tab:blue")]
        ax.set_ylim(bottom=max(depths + [1.0]) * 1.1, top=0)  # inverted: bars hang from the top
        ax.set_ylabel(f"{st.station}\nrain (mm)")
        ax.grid(True, alpha=0.3)
        ax.legend(handles=handles, loc="lower right", fontsize="small")


def broken_line(points: list[Point], step: int, zone: tzinfo
                ) -> tuple[list[datetime], list[float]]:
    """x and y for plot(), with a NaN wherever consecutive points lie more than 1.5 steps
    apart: matplotlib breaks the line there."""
    xs: list[datetime] = []
    ys: list[float] = []
    previous: int | None = None
    for p in points:
        if previous is not None and p.time - previous > 1.5 * step:
            xs.append(_when(previous + step, zone))
            ys.append(math.nan)
        xs.append(_when(p.time, zone))
        ys.append(float(p.value))  # type: ignore[arg-type]
        previous = p.time
    return xs, ys


def usual_step(points: list[Point]) -> int:
    """The median step between readings (900 s when there are too few to tell)."""
    steps = [b.time - a.time for a, b in zip(points, points[1:]) if b.time > a.time]
    return int(statistics.median(steps)) if steps else 900


def _when(ts: int, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(ts, zone)


def _zone_name(zone: tzinfo) -> str:
    if zone is timezone.utc:
        return "UTC"
    offset = datetime.now(zone).strftime("%z")
    return f"{zone}, UTC{offset[:3]}:{offset[3:]}"
