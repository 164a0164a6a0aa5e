"""Which gateway owns each station: the one gateway whose readings of it the ingest writes.

A station's owner is the first gateway it is heard from, until an operator moves it
(``watershed station move STATION --to GATEWAY``). Readings of it from any other gateway are
refused one by one (messages.py): dead-lettered, counted, confirmed ``rejected`` to their gateway.
A ``[[stations]]`` entry with ``gateways`` in the ingest config overrides this file.

Durable in a small file beside the dead-letter file (``[ingest] owners_file``), not in InfluxDB:
the ingest's InfluxDB user may only write, and the ingest must decide before it writes. The file
is append-only JSON lines, one record per claim or move, the last record of a station winning::

    {"station":"SAN-02","gateway":"gw-b","at":1763676900,"by":"first-seen:ingest-1"}
    {"station":"SAN-02","gateway":"gw-c","at":1763680000,"by":"move:alice"}

so it is also the history (who owned what, since when, moved by whom). Each append is under an
exclusive ``flock`` and re-reads the file first: ingest instances of one group on one host share
the file and agree on a first owner. A running ingest sees a move within ``REFRESH_S``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..contracts.ids import is_valid_id

log = logging.getLogger(__name__)

REFRESH_S = 1.0  # how stale the in-memory copy may be (a move takes effect within this)
FIRST_SEEN = "first-seen"
MOVE = "move"


@dataclass(frozen=True, slots=True)
class Ownership:
    station: str
    gateway: str
    at: int  # Unix s of the claim or move
    by: str  # "first-seen:<ingest id>" or "move:<operator>"

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at))
        return f"{self.gateway} (since {since}, {self.by})"


class Owners:
    """The station -> owner registry; ``path`` None keeps it in memory only (tests, tools)."""

    def __init__(self, path: str | Path | None, source: str = "ingest",
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path) if path is not None else None
        self.source = source  # the ingest id, in the records it writes
        self._clock = clock
        self._monotonic = monotonic
        self._owners: dict[str, Ownership] = {}
        self._seen: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) read
        self._next_check = 0.0
        self._warned: set[tuple[str, str]] = set()  # (station, gateway) refusals logged
        self.refused = 0  # readings refused for ownership (the worker counts, others read)

    # -- reading -------------------------------------------------------------------------------

    def load(self) -> None:
        """Read the file (created if missing, so a bad path fails at start). Raises OSError."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            self._read(f)

    def owner(self, station: str) -> Ownership | None:
        self._refresh()
        return self._owners.get(station)

    def all(self) -> list[Ownership]:
        self._refresh(force=True)
        return sorted(self._owners.values(), key=lambda o: o.station)

    def _refresh(self, force: bool = False) -> None:
        if self.path is None:
            return
        now = self._monotonic()
        if not force and now < self._next_check:
            return
        self._next_check = now + REFRESH_S
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        if (st.st_ino, st.st_size, st.st_mtime_ns) != self._seen:
            with open(self.path, "rb") as f:
                self._read(f)

    def _read(self, f: IO[bytes]) -> None:
        f.seek(0)
        owners: dict[str, Ownership] = {}
        for number, line in enumerate(f, 1):
            record = _parse(line)
            if record is None:
                if line.strip():
                    log.warning("%s:%d: not an ownership record, ignored: %.80r", self.path,
                                number, line)
                continue
            owners[record.station] = record
        st = os.fstat(f.fileno())
        self._seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        self._owners = owners

    # -- writing -------------------------------------------------------------------------------

    def claim(self, station: str, gateway: str) -> Ownership:
        """The station's owner: ``gateway`` if nobody owned it (recorded), else the owner."""
        with self._locked() as f:
            if f is not None:
                self._read(f)
            existing = self._owners.get(station)
            if existing is not None:
                return existing
            record = Ownership(station, gateway, int(self._clock()),
                               f"{FIRST_SEEN}:{self.source}")
            self._append(f, record)
        log.info("station %s is now owned by gateway %s (first heard from it)", station, gateway)
        return record

    def move(self, station: str, gateway: str, operator: str) -> Ownership | None:
        """Record ``gateway`` as the station's owner from now; returns the previous owner."""
        with self._locked() as f:
            if f is not None:
                self._read(f)
            previous = self._owners.get(station)
            self._append(f, Ownership(station, gateway, int(self._clock()),
                                      f"{MOVE}:{operator}"))
        return previous

    def note_refused(self, station: str, gateway: str, owner: str, readings: int) -> None:
        """Count readings refused because ``owner`` (described) owns their station; the first
        refusal of each (station, gateway) is logged."""
        self.refused += readings
        if (station, gateway) in self._warned:
            return
        self._warned.add((station, gateway))
        log.warning("ALERT gateway %s published readings of station %s, which gateway %s owns: "
                    "refused and dead-lettered. If the station moved, run `watershed station "
                    "move %s --to %s` (or change the ingest config's [[stations]])", gateway,
                    station, owner, station, gateway)

    @contextmanager
    def _locked(self) -> Iterator[IO[bytes] | None]:
        if self.path is None:
            yield None
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # released when the file closes
            yield f

    def _append(self, f: IO[bytes] | None, record: Ownership) -> None:
        if f is not None:
            line = json.dumps({"station": record.station, "gateway": record.gateway,
                               "at": record.at, "by": record.by}, separators=(",", ":"))
            end = f.seek(0, os.SEEK_END)
            if end and (f.seek(end - 1), f.read(1))[1] != b"\n":
                f.write(b"\n")  # end a line torn by a crash: the record goes on a line of its own
            f.write(line.encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())  # an owner once told is an owner after a crash
            st = os.fstat(f.fileno())
            self._seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        self._owners[record.station] = record


def _parse(line: bytes) -> Ownership | None:
    """A record, or None for a line that is not one (a torn last line after a crash)."""
    try:
        d = json.loads(line)
    except ValueError:
        return None
    if not (isinstance(d, dict) and isinstance(d.get("station"), str)
            and isinstance(d.get("gateway"), str) and is_valid_id(d["station"])
            and is_valid_id(d["gateway"]) and type(d.get("at")) is int
            and isinstance(d.get("by"), str)):
        return None
    return Ownership(d["station"], d["gateway"], d["at"], d["by"])
