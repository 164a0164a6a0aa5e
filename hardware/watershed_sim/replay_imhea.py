"""iMHEA raw logs (the Andean headwater monitoring network) as truth.

One CSV per sensor, ``dd/mm/yyyy HH:MM:SS`` local time, UTF-8 (a BOM is skipped), CR, LF or
CRLF line endings, a ``Flag`` column (several flags quoted: ``"D,P"``; case ignored):

- I: logger launched, D: data downloaded (logger events written as rows);
- X: a tip removed by hand (erroneous), P: an anomalous value;
- V: a data gap, from that row to the next row with a value.

A rain gauge log, ``Date,Event mm,Flag``, is one row per tip, ``Event mm`` the bucket size: it
reads into a TipLog. Flagged rows are events or edits, never rain; a row of 0 mm is no tip;
every tip must have the same bucket size (a log of multi-tip rows is refused).

A level logger log, ``Date,Level cm,Flow l/s,Flag`` (either value column may be absent), reads
into a Series of one column. Rows flagged I or D keep their value: the logger sampled then as
at every step. Rows flagged X, P or V, and empty values, are missing: the network's own quality
control excludes them, so a station replaying the log reports them missing.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from .replay import ReplayError, Series, TipLog, _build, _decimal, _parse_time

FLAGS = ("I", "D", "X", "P", "V")
EXCLUDED_LEVEL_FLAGS = frozenset("XPV")
RAIN_COLUMN = "Event mm"
LEVEL_COLUMNS = ("Level cm", "Flow l/s")
TIME_FORMATS = ("%d/%m/%Y %H:%M:%S",)


@dataclass(frozen=True)
class _Row:
    where: str  # file:line
    time: int
    values: dict[str, str]
    flags: frozenset[str]


def read_imhea(path: Path, column: str | None = None,
               utc_offset_h: float = 0.0) -> Series | TipLog:
    """A rain gauge log as a TipLog, a level logger log as the Series of ``column``: the
    header says which."""
    path = Path(path)
    header = _header(path)
    if RAIN_COLUMN in header:
        if column not in (None, RAIN_COLUMN):
            raise ReplayError(f"{path}:1: a rain gauge log has no column {column!r}, only "
                              f"{RAIN_COLUMN!r} (its tips)")
        return read_imhea_rain(path, utc_offset_h)
    if column is None:
        raise ReplayError(f"{path}:1: a level logger log needs a column: "
                          f"{' or '.join(repr(c) for c in header[1:-1])}")
    return read_imhea_level(path, column, utc_offset_h)


def read_imhea_rain(path: Path, utc_offset_h: float = 0.0) -> TipLog:
    path = Path(path)
    header = _header(path)
    if header != ["Date", RAIN_COLUMN, "Flag"]:
        raise ReplayError(f"{path}:1: not an iMHEA rain gauge log (Date,{RAIN_COLUMN},Flag)")
    tips: list[float] = []
    gaps: list[tuple[float, float]] = []
    gap_from: float | None = None
    bucket: tuple[Decimal, str] | None = None  # the first tip's size, and where it is
    first = last = None
    for row in _rows(path, header, utc_offset_h):
        first = row.time if first is None else first
        last = row.time
        text = row.values[RAIN_COLUMN]
        mm = _decimal(text, row.where) if text else None
        if mm is not None and mm < 0:
            raise ReplayError(f"{row.where}: {text!r} mm is below 0")
        if mm is not None and gap_from is not None:
            gaps.append((gap_from, row.time))
            gap_from = None
        if "V" in row.flags:
            gap_from = row.time if gap_from is None else gap_from
        if row.flags or mm == 0:
            continue  # a logger event or an edit, never rain
        if mm is None:
            raise ReplayError(f"{row.where}: no {RAIN_COLUMN!r} on an unflagged row (only a V "
                              f"row may leave it empty)")
        if bucket is None:
            bucket = (mm, row.where)
        elif mm != bucket[0]:
            raise ReplayError(f"{row.where}: a tip of {text} mm, but {bucket[0]} mm at "
                              f"{bucket[1]}: one row per tip, all of one bucket size")
        tips.append(row.time)
    if bucket is None or first is None or last is None:
        raise ReplayError(f"{path}: no tips, so no bucket size")
    end = last + 1  # the record covers its last row (times are whole seconds)
    if gap_from is not None:
        gaps.append((gap_from, end))
    return TipLog(tuple(tips), bucket[0], path.stem, first, end, tuple(gaps))


def read_imhea_level(path: Path, column: str, utc_offset_h: float = 0.0) -> Series:
    path = Path(path)
    header = _header(path)
    value_columns = header[1:-1]
    if (header[:1] != ["Date"] or header[-1:] != ["Flag"] or not value_columns
            or [c for c in LEVEL_COLUMNS if c in value_columns] != value_columns):
        raise ReplayError(f"{path}:1: not an iMHEA level logger log "
                          f"(Date,{','.join(LEVEL_COLUMNS)},Flag; one value column may be absent)")
    if column not in value_columns:
        raise ReplayError(f"{path}:1: no column {column!r} in the header "
                          f"({', '.join(value_columns)})")
    rows = []
    for row in _rows(path, header, utc_offset_h):
        text = row.values[column]
        value = _decimal(text, row.where) if text else None
        if value is not None and not row.flags & EXCLUDED_LEVEL_FLAGS:
            rows.append((row.time, value, row.where))
    return _build(rows, column, path)


def _header(path: Path) -> list[str]:
    with _open(path) as f:
        names = next(csv.reader(f), [])
    names = [n.strip() for n in names]
    while names and not names[-1]:
        names.pop()  # a trailing comma
    return names


def _rows(path: Path, header: list[str], utc_offset_h: float) -> Iterator[_Row]:
    zone = timezone(timedelta(hours=utc_offset_h))
    previous: tuple[int, str] | None = None
    with _open(path) as f:
        reader = csv.reader(f)
        next(reader, None)
        for fields in reader:
            where = f"{path}:{reader.line_num}"
            fields = [x.strip() for x in fields]
            while len(fields) > len(header) and not fields[-1]:
                fields.pop()  # trailing commas
            if len(fields) != len(header):
                raise ReplayError(f"{where}: {len(fields)} fields, the header has {len(header)}")
            local = _parse_time(fields[0], TIME_FORMATS, where)
            time = int(local.replace(tzinfo=zone).timestamp())
            if previous is not None and time < previous[0]:
                raise ReplayError(f"{where}: {fields[0]} is before the row above "
                                  f"({previous[1]})")
            previous = (time, where)
            yield _Row(where, time, dict(zip(header[1:-1], fields[1:-1])),
                       _flags(fields[-1], where))


def _flags(text: str, where: str) -> frozenset[str]:
    flags = frozenset(f.strip().upper() for f in text.split(",") if f.strip())
    unknown = sorted(flags - set(FLAGS))
    if unknown:
        raise ReplayError(f"{where}: unknown flag {unknown[0]!r} (flags are {', '.join(FLAGS)})")
    return flags


def _open(path: Path) -> TextIO:
    # newline="": the csv module splits CR, LF and CRLF lines itself and counts them
    return path.open(encoding="utf-8-sig", newline="")
