"""Corrections with history: a hydrologist flags or unflags readings, or marks a period (sensor
fouled, ice), and says who and why. The readings themselves are never rewritten: each correction
is a point of its own in the measurement ``corrections`` (tags station, channel; fields start,
end, set, clear, who, why; its time is when it was made, in ns so two never collide). A
reading's corrected flags are its stored flags with every correction covering it applied in the
order they were made: ``(flags | set) & ~clear``.
"""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..contracts.ids import check_id
from .flags import flag_names
from .influxql import OPENER, QueryError, query_series, quote_string

if TYPE_CHECKING:
    from .cli_common import Source

MEASUREMENT = "corrections"


@dataclass(frozen=True, slots=True)
class Correction:
    made_at: int  # Unix ns
    station: str
    channel: str
    start: int  # Unix s, inclusive
    end: int  # Unix s, exclusive
    set: int  # flags added
    clear: int  # flags removed
    who: str
    why: str

    def covers(self, station: str, channel: str, ts: int) -> bool:
        return self.station == station and self.channel == channel and self.start <= ts < self.end

    def apply(self, flags: int) -> int:
        return (flags | self.set) & ~self.clear & 0xFF

    def describe(self) -> str:
        made = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.made_at // 10**9))
        change = " ".join(p for p in (f"+{flag_names(self.set)}" if self.set else "",
                                      f"-{flag_names(self.clear)}" if self.clear else "") if p)
        return f"{change} by {self.who} at {made}: {self.why}"


def line(c: Correction) -> str:
    """Line protocol for one correction (precision ns)."""
    def text(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return (f"{MEASUREMENT},channel={check_id('channel', c.channel)},"
            f"station={check_id('station', c.station)} clear={c.clear}i,end={c.end}i,"
            f"set={c.set}i,start={c.start}i,who={text(c.who)},why={text(c.why)} {c.made_at}")


def record(src: Source, corrections: list[Correction]) -> None:
    """Write the corrections through ``/write`` (precision ns, which V1Writer does not take).
    Raises QueryError (InfluxDB refused) or OSError."""
    params = {"db": src.database, "precision": "ns"}
    if _raw_policy(src):
        params["rp"] = _raw_policy(src)
    request = urllib.request.Request(f"{src.url.rstrip('/')}/write?{urllib.parse.urlencode(params)}",
                                     data="\n".join(line(c) for c in corrections).encode(),
                                     method="POST")
    if src.username:
        token = base64.b64encode(f"{src.username}:{src.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with OPENER.open(request, timeout=30) as response:
            response.read()
    except urllib.error.HTTPError as e:
        with e:
            raise QueryError(f"HTTP {e.code}: {e.read().decode(errors='replace')}") from None


def _raw_policy(src: Source) -> str:
    return "" if src.retention_policy == "hourly" else src.retention_policy


def load_corrections(src: Source, station: str, start: int, end: int) -> list[Correction]:
    """Corrections of ``station`` that overlap [start, end), oldest first."""
    check_id("station", station)
    source = f'"{_raw_policy(src)}".{MEASUREMENT}' if _raw_policy(src) else MEASUREMENT
    series = query_series(src.url, src.database,
                          f"SELECT * FROM {source} WHERE station = {quote_string(station)} "
                          f"AND start < {end} AND \"end\" > {start} GROUP BY channel",
                          epoch="ns", username=src.username, password=src.password)
    out = [Correction(int(row["time"]), station, s.tags["channel"], int(row["start"]),
                      int(row["end"]), int(row["set"]), int(row["clear"]), row["who"], row["why"])
           for s in series for row in s.rows]
    return sorted(out, key=lambda c: c.made_at)
