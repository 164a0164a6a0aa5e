"""Truth versus stored: what the stations produced against what InfluxDB holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from watershed.contracts.channels import channel_name
from watershed.contracts.influx import FIELDS, absent_fields
from watershed.contracts.wire import MISSING, value_text
from watershed.hydro.influxql import query

from .station_process import Produced


@dataclass
class ChannelReport:
    station: str
    channel: str
    expected: int = 0
    stored: int = 0
    missing: list[int] = field(default_factory=list)  # seqs not found
    mismatched: list[str] = field(default_factory=list)  # what differs, per reading
    # seqs whose point InfluxDB showed only in part (influx.absent_fields), also in mismatched:
    # asked again, a write still being applied shows whole
    partial: list[int] = field(default_factory=list)


def _stored_points(url: str, database: str, station: str) -> dict[tuple[str, int], dict]:
    points = {}
    q = (f"SELECT {', '.join(FIELDS)} FROM readings WHERE station = '{station}' "
         "GROUP BY channel")
    for tags, rows in query(url, database, q):
        for row in rows:
            points[(tags["channel"], row["time"])] = row
    return points


def compare(url: str, database: str, produced: dict[str, list[Produced]]) -> list[ChannelReport]:
    """One report per station and channel; a reading matches when its point has the exact
    value, flags and seq at its time. A reading with no point at its time is missing, unless
    a point carries its seq elsewhere (stored at the wrong channel or time: mismatched). A seq
    the station printed twice with different content is mismatched too (a reused seq), and so
    is a point that lacks fields every reading has (``partial`` says which: ask again)."""
    reports: dict[tuple[str, str], ChannelReport] = {}
    for station, readings in produced.items():
        points = _stored_points(url, database, station)
        by_seq: dict[int, tuple[str, int]] | None = None
        first_of: dict[int, Produced] = {}
        for reading in readings:
            seq, number, time, mantissa, exponent, flags = reading
            name = channel_name(number)
            report = reports.setdefault((station, name), ChannelReport(station, name))
            report.expected += 1
            earlier = first_of.setdefault(seq, reading)
            if earlier != reading:
                report.mismatched.append(f"seq {seq} printed twice by the station: {earlier} "
                                         f"and {reading}")
            point = points.get((name, time))
            if point is None:
                if by_seq is None:
                    by_seq = {row["seq"]: key for key, row in points.items()}
                elsewhere = by_seq.get(seq)
                if elsewhere is None:
                    report.missing.append(seq)
                else:
                    report.mismatched.append(f"seq {seq} stored at {elsewhere[0]}/{elsewhere[1]}"
                                             f", produced at {name}/{time}")
                continue
            absent = absent_fields(point)
            if absent:
                report.partial.append(seq)
                report.mismatched.append(f"seq {seq} at {time}: the point has no "
                                         f"{', '.join(absent)} (only part of it written)")
                continue
            report.stored += 1
            want = None if flags & MISSING else Decimal(value_text(mantissa, exponent))
            if point["value"] != want or point["flags"] != flags or point["seq"] != seq:
                report.mismatched.append(
                    f"seq {seq} at {time}: stored value={point['value']} flags={point['flags']} "
                    f"seq={point['seq']}, produced value={want} flags={flags}")
    return sorted(reports.values(), key=lambda r: (r.station, r.channel))


def discharge_counts(url: str, database: str, stations: list[str],
                     until: float) -> dict[str, dict[str, int]]:
    """What the ingest derived through each rated station's rating: discharge points against
    stage readings, up to ``until`` (a rating derives one for every stage reading)."""
    out = {}
    for station in stations:
        counts = {}
        for channel in ("stage_m", "discharge_m3s"):
            q = (f"SELECT count(seq) FROM readings WHERE station = '{station}' AND "
                 f"channel = '{channel}' AND time <= {int(until)}s")
            rows = [row for _, series in query(url, database, q) for row in series]
            counts[channel] = int(rows[0]["count"]) if rows else 0
        out[station] = {"stage_readings": counts["stage_m"],
                        "discharge_points": counts["discharge_m3s"]}
    return out


def format_table(reports: list[ChannelReport]) -> str:
    lines = [f"{'station':<10} {'channel':<16} {'expected':>8} {'stored':>8} {'missing':>8} "
             f"{'mismatched':>10}"]
    for r in reports:
        lines.append(f"{r.station:<10} {r.channel:<16} {r.expected:>8} {r.stored:>8} "
                     f"{len(r.missing):>8} {len(r.mismatched):>10}")
    return "\n".join(lines)
