"""`watershed query`: readings for hydrologists, raw or aggregated per time window, through
InfluxQL ``/query`` (1.x; 2.x through a DBRP mapping; 3.x).

Values come back as decimals from InfluxDB's JSON text, so raw values, minima and maxima print
exactly as the sensor wrote them. Means and sums are computed by InfluxDB in binary floating point;
they are shown to 15 significant digits, all that float64 carries, which drops noise such as
0.30000000000000004 without changing a digit that means anything.

Per window the default aggregate is the channel's own: a sum for totals (rain, per the channel
catalogue), a mean for the others; ``count`` says how many values went in and ``missing`` how
many readings of the window had none, so an incomplete rain total never passes for a complete
one. The hourly rollups (``--rp hourly``) are read from ``readings_hourly`` and aggregated
further here, weighting each hour's mean by its count.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone, tzinfo
from decimal import Decimal
from typing import Any

from ..contracts.channels import TOTALS
from ..contracts.ids import check_id
from ..contracts.influx import MEASUREMENT
from .cli_common import Source
from .flags import flag_names
from .influx_setup import HOURLY_MEASUREMENT, HOURLY_POLICY
from .registry import EMPTY
from .influxql import (Series, asked_whole, in_part, query_results, query_series, quote_ident,
                       quote_string)
from .windows import calendar_windows, check_every, fixed_seconds

AGGREGATES = ("mean", "min", "max", "sum")
FORMATS = ("table", "csv", "json")
COLUMNS = ("seq", "rating_id", "gateway", "flag_names")  # extra columns of raw readings
IDENTITY = ("station", "basin", "channel")
WHOLE_TRIES = 20  # asks of raw readings while a point shows in part, 0.1 s apart
CLEAN = "(flags = 0 OR flags = 128)"
_STATS = ("mean(value) AS mean, min(value) AS min, max(value) AS max, sum(value) AS sum, "
          "count(value) AS count, count(flags) AS readings")

log = logging.getLogger(__name__)


class UnknownName(ValueError):
    """A station, basin or channel the database has never seen."""


def default_agg(channel: str) -> str:
    """A window's aggregate when ``--agg`` does not say: sum for totals, mean otherwise."""
    return "sum" if channel in TOTALS else "mean"


@dataclass(frozen=True, slots=True)
class ReadingsQuery:
    start: int  # Unix s, inclusive
    end: int  # Unix s, exclusive
    stations: tuple[str, ...] = ()
    basins: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    every: str | None = None  # a window (windows.check_every); None: raw readings
    agg: str | None = None  # None: per channel (default_agg)
    clean: bool = False  # only values without a quality defect (flags 0, or the event bit only)
    retention_policy: str = ""  # "" : the database's default; "hourly": the rollups
    columns: tuple[str, ...] = ()  # of COLUMNS, raw readings only
    zone: tzinfo = timezone.utc  # calendar windows are counted on this clock

    def __post_init__(self) -> None:
        for kind, names in (("station", self.stations), ("basin", self.basins),
                            ("channel", self.channels)):
            for name in names:
                check_id(kind, name)
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.every is not None:
            check_every(self.every)
        if self.agg is not None and self.agg not in AGGREGATES:
            raise ValueError(f"agg: expected one of {', '.join(AGGREGATES)}, got {self.agg!r}")
        for column in self.columns:
            if column not in COLUMNS:
                raise ValueError(f"columns: expected some of {', '.join(COLUMNS)}, "
                                 f"got {column!r}")
        if self.columns and (self.every is not None or self.rollups):
            raise ValueError("columns: only raw readings have seq, rating_id, gateway and "
                             "flags (no --every, no --rp hourly)")

    @property
    def rollups(self) -> bool:
        return self.retention_policy == HOURLY_POLICY

    @property
    def aggregated(self) -> bool:
        return self.every is not None or self.rollups

    def source(self) -> str:
        measurement = HOURLY_MEASUREMENT if self.rollups else MEASUREMENT
        if self.retention_policy:
            return f"{quote_ident(self.retention_policy)}.{quote_ident(measurement)}"
        return quote_ident(measurement)

    def where(self, start: int | None = None, end: int | None = None) -> str:
        where = [f"time >= {self.start if start is None else start}s",
                 f"time < {self.end if end is None else end}s"]
        for tag, names in zip(IDENTITY, (self.stations, self.basins, self.channels)):
            if names:
                where.append("(" + " OR ".join(f"{tag} = {quote_string(n)}" for n in names)
                             + ")")
        if self.clean and not self.rollups:  # the rollups hold clean values only
            where.append(CLEAN)
        return " AND ".join(where)

    def statements(self) -> list[str]:
        """The InfluxQL to run: one statement, or one per calendar window."""
        tags = ", ".join(IDENTITY)
        if self.rollups:
            return [f"SELECT mean, min, max, sum, count FROM {self.source()} "
                    f"WHERE {self.where()} GROUP BY {tags}"]
        if self.every is None:
            fields = ", ".join(("value", "flags", *(c for c in self.columns
                                                    if c != "flag_names")))
            return [f"SELECT {fields} FROM {self.source()} WHERE {self.where()} GROUP BY {tags}"]
        seconds = fixed_seconds(self.every)
        if seconds is not None:  # windows start at --start: offset it from the epoch's grid
            return [f"SELECT {_STATS} FROM {self.source()} WHERE {self.where()} "
                    f"GROUP BY time({seconds}s, {self.start % seconds}s), {tags} fill(none)"]
        return [f"SELECT {_STATS} FROM {self.source()} WHERE {self.where(a, b)} GROUP BY {tags}"
                for a, b in self.windows()]

    def windows(self) -> list[tuple[int, int]]:
        assert self.every is not None
        return calendar_windows(self.every, self.start, self.end, self.zone)

    def influxql(self) -> str:
        return "; ".join(self.statements())


@dataclass(frozen=True, slots=True)
class Record:
    time: int
    station: str
    basin: str
    channel: str
    value: Decimal | None
    extra: dict[str, Any] = field(default_factory=dict)  # flags (raw) or agg, count, missing


def known_names(url: str, database: str, q: ReadingsQuery, *, username: str = "",
                password: str = "", timeout_s: float = 60) -> dict[str, list[str]]:
    """tag -> every value the measurement has for it (station, basin, channel)."""
    keys = ", ".join(quote_ident(t) for t in IDENTITY)
    series = query_series(url, database, f"SHOW TAG VALUES FROM {q.source()} WITH KEY IN "
                                         f"({keys})", username=username, password=password,
                          timeout_s=timeout_s)
    known: dict[str, list[str]] = {t: [] for t in IDENTITY}
    for s in series:
        for row in s.rows:
            known[row["key"]].append(row["value"])
    return {t: sorted(set(v)) for t, v in known.items()}


def check_names(known: dict[str, list[str]], q: ReadingsQuery) -> None:
    """Raise UnknownName for a station, basin or channel the database does not hold."""
    for tag, names in zip(IDENTITY, (q.stations, q.basins, q.channels)):
        for name in names:
            if name not in known[tag]:
                raise UnknownName(f"unknown {tag} {name!r}; known: "
                                  f"{', '.join(known[tag]) or 'none (the database is empty)'}")


def run_query(url: str, database: str, q: ReadingsQuery, *, username: str = "",
              password: str = "", timeout_s: float = 60, check: bool = True) -> list[Record]:
    """Records sorted by station, channel, time. Raises UnknownName (with ``check``),
    QueryError or OSError."""
    if check and (q.stations or q.basins or q.channels):
        check_names(known_names(url, database, q, username=username, password=password,
                                timeout_s=timeout_s), q)
    raw = q.every is None and not q.rollups
    # raw readings: --clean is decided on the corrected flags, so it is applied here
    sent = replace(q, clean=False) if raw else q

    def ask() -> list[list[Series]]:
        return query_results(url, database, sent.influxql(), username=username,
                             password=password, timeout_s=timeout_s)

    if raw:
        results = _whole_points(q, ask)
    else:
        results = ask()
    if q.rollups:
        records = _rollup_records(q, results[0])
    elif raw:
        records = [_raw_record(q, s.tags, row) for s in results[0] for row in s.rows]
        records = _corrected(Source(url, database, q.retention_policy, username, password,
                                    EMPTY), q, records)
    elif fixed_seconds(q.every or "") is not None:
        records = [_window_record(q, s.tags, int(row["time"]), row)
                   for s in results[0] for row in s.rows if row["readings"]]
    else:
        records = [_window_record(q, s.tags, begin, row)
                   for (begin, _), result in zip(q.windows(), results)
                   for s in result for row in s.rows if row["readings"]]
    records.sort(key=lambda r: (r.station, r.channel, r.time))
    return records


def _whole_points(q: ReadingsQuery, ask: Callable[[], list[list[Series]]]
                  ) -> list[list[Series]]:
    """Raw readings asked again while a point shows in part (influxql.asked_whole): the one
    the ingest is writing as we read could come without its flags or its value. One still in
    part after the tries was not written whole by the ingest: kept as it is (its flags
    unknown, not 0), and said."""
    fields = ("value", "flags", *(c for c in q.columns if c in ("seq", "gateway")))
    results, partial = asked_whole(ask, lambda r: ({**s.tags, **row} for s in r[0]
                                                   for row in s.rows), fields, WHOLE_TRIES)
    if partial:
        log.warning("%s; kept as InfluxDB holds them", in_part(partial, WHOLE_TRIES, fields))
    return results


def _corrected(src: Source, q: ReadingsQuery, records: list[Record]) -> list[Record]:
    """Raw records with ``corrected_flags`` and ``correction`` columns when a hydrologist's
    correction touches any of them (hydro/corrections.py); --clean on the corrected flags."""
    from .corrections import load_corrections
    found = [c for station in sorted({r.station for r in records})
             for c in load_corrections(src, station, q.start, q.end)]
    if found:
        out = []
        for r in records:
            hits = [c for c in found if c.covers(r.station, r.channel, r.time)]
            flags = r.extra["flags"]
            for c in hits:
                flags = c.apply(flags or 0)
            out.append(replace(r, extra={**r.extra, "corrected_flags": flags if hits else None,
                                         "correction": "; ".join(c.describe() for c in hits)}))
        records = out
    if not q.clean:
        return records
    return [r for r in records if (r.extra["flags"] if r.extra.get("corrected_flags") is None
                                   else r.extra["corrected_flags"]) in (0, 128)]


def _raw_record(q: ReadingsQuery, tags: dict[str, str], row: dict[str, Any]) -> Record:
    flags = None if row["flags"] is None else int(row["flags"])
    extra: dict[str, Any] = {"flags": flags}
    for column in q.columns:
        extra[column] = flag_names(flags) if column == "flag_names" else row.get(column)
    return Record(int(row["time"]), tags.get("station", ""), tags.get("basin", ""),
                  tags.get("channel", ""), row["value"], extra)


def _window_record(q: ReadingsQuery, tags: dict[str, str], time: int, row: dict[str, Any]
                   ) -> Record:
    agg = q.agg or default_agg(tags.get("channel", ""))
    value = row[agg]
    if value is not None and agg in ("mean", "sum"):
        value = float_digits(value)
    count, readings = int(row["count"] or 0), int(row["readings"] or 0)
    return Record(time, tags.get("station", ""), tags.get("basin", ""), tags.get("channel", ""),
                  value, {"agg": agg, "count": count, "missing": readings - count})


def _rollup_records(q: ReadingsQuery, series: list[Series]) -> list[Record]:
    """Hours from readings_hourly, as they are (no --every) or gathered into windows."""
    out = []
    for s in series:
        channel = s.tags.get("channel", "")
        agg = q.agg or default_agg(channel)
        hours = [row for row in s.rows if row.get(agg) is not None or agg == "mean"
                 and row.get("mean") is not None]
        for begin, rows in _group(q, hours):
            value = _combine(agg, rows)
            if value is None:
                continue
            out.append(Record(begin, s.tags.get("station", ""), s.tags.get("basin", ""),
                              channel, value, {"agg": agg, "count": sum(int(r["count"] or 0)
                                                                        for r in rows),
                                               "missing": ""}))
    return out


def _group(q: ReadingsQuery, rows: list[dict[str, Any]]
           ) -> list[tuple[int, list[dict[str, Any]]]]:
    if q.every is None:
        return [(int(r["time"]), [r]) for r in rows]
    seconds = fixed_seconds(q.every)
    if seconds is not None:
        windows = [(a, a + seconds) for a in range(q.start, q.end, seconds)]
    else:
        windows = q.windows()
    out = []
    for begin, end in windows:
        inside = [r for r in rows if begin <= int(r["time"]) < end]
        if inside:
            out.append((begin, inside))
    return out


def _combine(agg: str, rows: list[dict[str, Any]]) -> Decimal | None:
    if agg == "mean":
        weighted = [(r["mean"], int(r["count"] or 0)) for r in rows if r["mean"] is not None]
        n = sum(c for _, c in weighted)
        return float_digits(sum((m * c for m, c in weighted), Decimal(0)) / n) if n else None
    values = [r[agg] for r in rows if r[agg] is not None]
    if not values:
        return None
    if agg == "sum":
        return float_digits(sum(values, Decimal(0)))
    return min(values) if agg == "min" else max(values)


def float_digits(value: Decimal) -> Decimal:
    """A float64 result rounded to the 15 significant digits it can carry."""
    return Decimal(format(value, ".15g")).normalize()


ZoneOf = Callable[[str], tzinfo]  # station -> the clock its times are shown on


def format_records(records: list[Record], fmt: str, zone_of: ZoneOf | None = None) -> str:
    extra = list(records[0].extra) if records else ["flags"]
    header = ["time", "station", "basin", "channel", "value", *extra]
    zone_of = zone_of or (lambda _station: timezone.utc)
    rows = [[time_text(r.time, zone_of(r.station)), r.station, r.basin, r.channel,
             _text(r.value), *(_cell(r.extra.get(k)) for k in extra)] for r in records]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return out.getvalue()
    if fmt == "json":
        # Values as JSON numbers in their exact decimal text (json.dumps would go through float).
        items = [
            "{" + ",".join([f'"time":{json.dumps(row[0])}', f'"ts":{r.time}',
                            f'"station":{json.dumps(r.station)}', f'"basin":{json.dumps(r.basin)}',
                            f'"channel":{json.dumps(r.channel)}',
                            f'"value":{"null" if r.value is None else _text(r.value)}',
                            *(f'"{k}":{_json(r.extra.get(k))}' for k in extra)]) + "}"
            for r, row in zip(records, rows)]
        return "[" + ",\n ".join(items) + "]\n"
    if fmt != "table":
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]
    numeric = {4} | {5 + i for i, k in enumerate(extra) if k in ("flags", "count", "missing",
                                                                "seq")}
    lines = ["  ".join(h.rjust(w) if i in numeric else h.ljust(w)
                       for i, (h, w) in enumerate(zip(header, widths)))]
    lines += ["  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def time_text(ts: int, zone: tzinfo = timezone.utc) -> str:
    """ISO 8601: ``Z`` in UTC, else the zone's offset (``2025-11-20T17:00:00-05:00``)."""
    when = datetime.fromtimestamp(ts, zone)
    if when.utcoffset() == timezone.utc.utcoffset(None) and zone is timezone.utc:
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return when.isoformat()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _json(value: Any) -> str:
    if value is None or value == "":
        return "null"
    if isinstance(value, Decimal):
        return format(value, "f")
    return json.dumps(value)


def _text(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")
