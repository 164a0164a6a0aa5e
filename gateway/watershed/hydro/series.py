"""One station's raw readings per channel, as the plot, the export and the audit take them:
value (exact), flags as stored and as corrected (hydro/corrections.py), seq, rating_id."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from .cli_common import Source
from .query import ReadingsQuery, run_query


@dataclass(frozen=True, slots=True)
class Point:
    time: int
    value: Decimal | None
    flags: int | None  # as the station (or the ingest) stored it; None: the point has none
    seq: int | None = None
    rating_id: str = ""
    corrected_flags: int | None = None  # None: no correction touches it
    correction: str = ""  # who / when / why of the corrections that did

    @property
    def effective_flags(self) -> int | None:
        return self.flags if self.corrected_flags is None else self.corrected_flags


@dataclass(frozen=True, slots=True)
class StationSeries:
    station: str
    basin: str
    channels: dict[str, list[Point]] = field(default_factory=dict)


def load_station(src: Source, station: str, start: int, end: int,
                 channels: tuple[str, ...] = (), check: bool = True) -> StationSeries:
    """Raises UnknownName (unless not ``check``: a name never seen gives no points),
    QueryError, OSError."""
    q = ReadingsQuery(start, end, stations=(station,), channels=channels,
                      retention_policy="" if src.retention_policy == "hourly"
                      else src.retention_policy, columns=("seq", "rating_id"))
    records = run_query(src.url, src.database, q, username=src.username, password=src.password,
                        check=check)
    info = src.registry.station(station)
    out = StationSeries(station, records[0].basin if records else info.basin if info else "")
    for r in records:  # run_query has applied the corrections
        seq = r.extra.get("seq")
        corrected = r.extra.get("corrected_flags")
        out.channels.setdefault(r.channel, []).append(
            Point(r.time, r.value, r.extra.get("flags"),
                  None if seq is None else int(seq), r.extra.get("rating_id") or "",
                  None if corrected is None else int(corrected), r.extra.get("correction", "")))
    return out
