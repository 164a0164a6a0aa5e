"""Re-derive discharge from stored stage after a rating changes.

Raw stage is kept forever; discharge is a product of it and a rating. This reads a station's
stage points for a time range back from InfluxDB, derives discharge through the ratings now
configured for the station, and writes the points: same identity (station, channel, time), so
each replaces the discharge derived before, now carrying the new rating's id. Where no rating
is in force any more, a discharge derived before (one with a ``rating_id``) is deleted: a
number from a withdrawn rating must not stay behind as if it were current.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..contracts.ids import check_id
from ..contracts.influx import DISCHARGE_CHANNEL, MEASUREMENT, discharge_line
from .influxql import query, whole_rows
from ..ingest.config import ConfigError, IngestConfig
from ..ingest.ratings_setup import load_station_ratings
from ..ingest.writer import Writer, make_writer


@dataclass(frozen=True, slots=True)
class RecomputeReport:
    stages: int  # stage points read
    written: int  # discharge points written
    out_of_range: int  # of those, stage outside the rating: flagged, no value
    no_rating: int  # stage points with no rating effective at their time: nothing written
    removed: int  # of those, discharge derived earlier that was deleted
    ratings: tuple[str, ...]  # rating ids used


def recompute(config: IngestConfig, station: str, start: int, end: int,
              writer: Writer | None = None) -> RecomputeReport:
    """Stage points with start ≤ time < end (Unix s). Raises ValueError for a reversed range."""
    if end <= start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    check_id("station", station)  # it goes into the query text
    entry = config.station(station)
    if entry is None or not entry.ratings:
        raise ConfigError(f"stations: no ratings configured for station {station}")
    ratings = load_station_ratings(config)[station]
    i = config.influx
    q = (f"SELECT value, flags, seq, gateway, basin FROM {MEASUREMENT} "
         f"WHERE station = '{station}' AND channel = '{entry.stage_channel}' "
         f"AND time >= {start}s AND time < {end}s")
    rows = whole_rows(lambda: query(i.url, i.database, q, username=i.username,
                                    password=i.password, timeout_s=max(i.timeout_s, 30)))
    lines, out_of_range, unrated, used = [], 0, [], set()
    for row in rows:
        derived = ratings.derive(row["value"], int(row["flags"]), int(row["time"]))
        if derived is None:
            unrated.append(int(row["time"]))
            continue
        used.add(derived.rating_id)
        out_of_range += derived.value is None and row["value"] is not None
        lines.append(discharge_line(station, row["basin"], int(row["time"]), derived.value,
                                    derived.flags, int(row["seq"]), row["gateway"],
                                    derived.rating_id))
    removed = _remove_derived(config, station, unrated, start, end)
    own_writer = writer is None
    writer = writer or make_writer(i)
    try:
        for at in range(0, len(lines), i.batch_size):
            writer.write(lines[at:at + i.batch_size])
    finally:
        if own_writer:
            writer.close()
    return RecomputeReport(len(rows), len(lines), out_of_range, len(unrated), removed,
                           tuple(sorted(used)))


def _remove_derived(config: IngestConfig, station: str, times: list[int], start: int,
                    end: int) -> int:
    """Delete the rating-derived discharge points at ``times``; how many there were. A
    measured discharge (no rating_id) is left alone."""
    if not times:
        return 0
    i = config.influx
    found = query(i.url, i.database,
                  f"SELECT rating_id, value FROM {MEASUREMENT} WHERE station = '{station}' AND "
                  f"channel = '{DISCHARGE_CHANNEL}' AND time >= {start}s AND time < {end}s",
                  username=i.username, password=i.password, timeout_s=max(i.timeout_s, 30))
    derived = {int(row["time"]) for _, rows in found for row in rows if row.get("rating_id")}
    doomed = sorted(derived.intersection(times))
    for at in range(0, len(doomed), 500):
        query(i.url, i.database, "; ".join(
            f"DELETE FROM {MEASUREMENT} WHERE station = '{station}' AND "
            f"channel = '{DISCHARGE_CHANNEL}' AND time = {t}s" for t in doomed[at:at + 500]),
            username=i.username, password=i.password, timeout_s=max(i.timeout_s, 30))
    return len(doomed)
