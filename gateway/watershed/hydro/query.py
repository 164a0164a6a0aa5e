"""`watershed query`: readings for hydrologists, raw or aggregated per time window, through
InfluxQL ``/query`` (1.x; 2.x through a DBRP mapping; 3.x).

Values come back as decimals from InfluxDB's JSON text, so raw values, minima and maxima print
exactly as the sensor wrote them. Means and sums are computed by InfluxDB in binary floating point;
they are shown to 15 significant digits, all that float64 carries, which drops noise such as
0.30000000000000004 without changing a digit that means anything.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from ..contracts.ids import check_id
from ..contracts.influx import MEASUREMENT
from .influxql import query_series, quote_ident, quote_string

AGGREGATES = ("mean", "min", "max", "sum")
FORMATS = ("table", "csv", "json")
_FLOAT_ARITHMETIC = {"mean", "sum"}
_EVERY = re.compile(r"[0-9]+(?:s|m|h|d|w)")
IDENTITY = ("station", "basin", "channel")


@dataclass(frozen=True, slots=True)
class ReadingsQuery:
    start: int  # Unix s, inclusive
    end: int  # Unix s, exclusive
    stations: tuple[str, ...] = ()
    basins: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    every: str | None = None  # aggregation window (InfluxQL duration: 1h, 15m, 1d); None: raw
    agg: str = "mean"
    clean: bool = False  # only values without a quality defect (flags 0, or the event bit only)
    retention_policy: str = ""  # "" : the database's default

    def __post_init__(self) -> None:
        for kind, names in (("station", self.stations), ("basin", self.basins),
                            ("channel", self.channels)):
            for name in names:
                check_id(kind, name)
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.every is not None and not _EVERY.fullmatch(self.every):
            raise ValueError(f"every: expected a duration such as 15m, 1h, 1d, got {self.every!r}")
        if self.agg not in AGGREGATES:
            raise ValueError(f"agg: expected one of {', '.join(AGGREGATES)}, got {self.agg!r}")

    def influxql(self) -> str:
        source = quote_ident(MEASUREMENT)
        if self.retention_policy:
            source = f"{quote_ident(self.retention_policy)}.{source}"
        where = [f"time >= {self.start}s", f"time < {self.end}s"]
        for tag, names in zip(IDENTITY, (self.stations, self.basins, self.channels)):
            if names:
                where.append("(" + " OR ".join(f"{tag} = {quote_string(n)}" for n in names)
                             + ")")
        if self.clean:
            where.append("(flags = 0 OR flags = 128)")
        tags = ", ".join(IDENTITY)
        if self.every is None:
            return (f"SELECT value, flags FROM {source} WHERE {' AND '.join(where)} "
                    f"GROUP BY {tags}")
        return (f"SELECT {self.agg}(value) AS value, count(value) AS count FROM {source} "
                f"WHERE {' AND '.join(where)} GROUP BY time({self.every}), {tags} fill(none)")


@dataclass(frozen=True, slots=True)
class Record:
    time: int
    station: str
    basin: str
    channel: str
    value: Decimal | None
    extra: int | None  # flags for raw readings, the number of values for aggregates


def run_query(url: str, database: str, q: ReadingsQuery, *, username: str = "",
              password: str = "", timeout_s: float = 60) -> list[Record]:
    """Records sorted by station, channel, time. Raises QueryError or OSError."""
    records = []
    for series in query_series(url, database, q.influxql(), username=username,
                               password=password, timeout_s=timeout_s):
        tags = series.tags
        for row in series.rows:
            value = row["value"]
            if value is not None and q.every is not None and q.agg in _FLOAT_ARITHMETIC:
                value = float_digits(value)
            extra = row.get("flags") if q.every is None else row.get("count")
            records.append(Record(int(row["time"]), tags.get("station", ""),
                                  tags.get("basin", ""), tags.get("channel", ""), value,
                                  None if extra is None else int(extra)))
    records.sort(key=lambda r: (r.station, r.channel, r.time))
    return records


def float_digits(value: Decimal) -> Decimal:
    """A float64 result rounded to the 15 significant digits it can carry."""
    return Decimal(format(value, ".15g")).normalize()


def format_records(records: list[Record], fmt: str, aggregated: bool) -> str:
    extra = "count" if aggregated else "flags"
    header = ["time", "station", "basin", "channel", "value", extra]
    rows = [[_iso(r.time), r.station, r.basin, r.channel, _text(r.value),
             "" if r.extra is None else str(r.extra)] for r in records]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return out.getvalue()
    if fmt == "json":
        # Values as JSON numbers in their exact decimal text (json.dumps would go through float).
        items = [
            "{" + ",".join([f'"time":{json.dumps(_iso(r.time))}', f'"ts":{r.time}',
                            f'"station":{json.dumps(r.station)}', f'"basin":{json.dumps(r.basin)}',
                            f'"channel":{json.dumps(r.channel)}',
                            f'"value":{"null" if r.value is None else _text(r.value)}',
                            f'"{extra}":{"null" if r.extra is None else r.extra}']) + "}"
            for r in records]
        return "[" + ",\n ".join(items) + "]\n"
    if fmt != "table":
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]
    numeric = {4, 5}  # right-aligned columns
    lines = ["  ".join(h.rjust(w) if i in numeric else h.ljust(w)
                       for i, (h, w) in enumerate(zip(header, widths)))]
    lines += ["  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")
