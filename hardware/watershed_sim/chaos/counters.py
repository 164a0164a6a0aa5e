"""Every counter the chaos verdict checks against the truth, read in one place.

The names of the gateway's health fields and ledger reasons move with the code (end-to-end
confirmation, quarantine, full-disk handling): adapt them here, nowhere else.

- ``backlog(health, status)``: what still waits in the gateway and the ingest (drain check).
- ``gateway_accounts(store_path, health)``: per station id as the gateway knows it, readings
  accounted as lost or held back, by cause; and the exact seqs where the store knows them.
- ``ingest_accounts(deadletter_path)``: the (station, seq) of every reading in a dead letter.
- ``StoreTrace``: where the gateway's store last saw a reading nobody accounts for (the hop
  after which it went missing).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watershed.gateway.store import Store

log = logging.getLogger(__name__)

FRESH_S = 10.0  # a health or status older than this may be a stale retained copy


def _fresh(document: dict[str, Any] | None) -> bool:
    return document is not None and document.get("at", 0) >= time.time() - FRESH_S


def gateway_waiting(health: dict[str, Any] | None) -> int | None:
    """Readings the gateway has not finished with: unsent, and (end-to-end confirmation)
    published but not yet confirmed. None when no fresh health has been seen."""
    if not _fresh(health):
        return None
    assert health is not None
    queue = health.get("queue", {})
    return int(queue.get("unsent") or 0) + int(queue.get("unconfirmed") or 0)


def ingest_waiting(status: dict[str, Any] | None) -> int | None:
    """Messages the ingest holds unacknowledged; None when it is not connected or its status
    is not fresh."""
    if not _fresh(status) or not status or not status.get("connected"):
        return None
    m = status.get("messages", {})
    return int(m.get("unacked") or 0) + int(m.get("queued") or 0) + int(m.get("pending") or 0)


@dataclass
class Accounts:
    """Readings not stored on purpose or lost knowingly, per station id and cause."""
    counted: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    # causes that name their readings exactly: station -> seq -> cause
    exact: dict[str, dict[int, str]] = field(default_factory=lambda: defaultdict(dict))
    errors: list[str] = field(default_factory=list)  # a counter that could not be read

    def merge(self, other: Accounts) -> None:
        for station, counts in other.counted.items():
            self.counted[station].update(counts)
        for station, seqs in other.exact.items():
            self.exact[station].update(seqs)
        self.errors += other.errors


def gateway_accounts(store_path: Path, health: dict[str, Any] | None) -> Accounts:
    """From the store file (the gateway stopped) and its last health message."""
    accounts = Accounts()
    try:
        with Store(store_path) as store:
            for station, reasons in store.loss_ledger().items():
                for reason, n in reasons.items():
                    accounts.counted[station][f"gateway:{reason}"] += n
                for first, end in store.lost_runs(station):
                    for seq in range(first, end):
                        accounts.exact[station][seq] = "gateway:gone_from_station"
            for station, seq in _conflicts(store_path):
                accounts.exact[station][seq] = "gateway:conflict"
            for info in store.stations():
                for name in ("lost_overwritten", "lost_corrupt"):
                    n = getattr(info, name)
                    if n:
                        accounts.counted[info.station][f"station:{name}"] += n
    except Exception as e:  # the verdict still reports everything else
        accounts.errors.append(f"gateway store {store_path}: {e!r}")
    for station, n in quarantined(health).items():
        accounts.counted[station]["gateway:quarantined"] += n
    return accounts


def _conflicts(store_path: Path) -> list[tuple[str, int]]:
    """Readings held back because their (station, seq) was stored with other content (the
    store keeps them in its ``conflicts`` table; no Store method lists them)."""
    with sqlite3.connect(f"file:{store_path}?mode=ro", uri=True) as db:
        return db.execute("SELECT station, seq FROM conflicts").fetchall()


def quarantined(health: dict[str, Any] | None) -> dict[str, int]:
    """Readings the gateway holds in quarantine, per station id: the health's per-station
    ``quarantined`` (a number, or numbers by reason) or its ``quarantine`` table (station ->
    number, at the top or under ``stations``). The names are settled at merge."""
    out: Counter[str] = Counter()
    for station, entry in ((health or {}).get("stations") or {}).items():
        out[station] += _total(entry.get("quarantined"))
    table = (health or {}).get("quarantine") or {}
    if isinstance(table, dict):
        for station, n in (table.get("stations") or table).items():
            out[station] += _total(n)
    return {station: n for station, n in out.items() if n}


def _total(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return sum(_total(v) for k, v in value.items() if k != "total") \
            if "total" not in value else _total(value["total"])
    return 0


def ingest_accounts(deadletter_path: Path) -> Accounts:
    accounts = Accounts()
    try:
        lines = deadletter_path.read_bytes().splitlines()
    except FileNotFoundError:
        return accounts
    for line in lines:
        try:
            record = json.loads(line)
            payload = record["payload"]
            message = json.loads(payload) if isinstance(payload, str) else {}
            station = message["station"]
            for reading in message["readings"]:
                accounts.exact[station][int(reading["seq"])] = \
                    f"ingest:deadletter:{record['reason'].split(':')[0]}"
        except (ValueError, KeyError, TypeError) as e:
            accounts.errors.append(f"dead letter not understood ({e!r}): {line[:200]!r}")
    return accounts


class StoreTrace:
    """Which hop a reading got to, from the gateway's store file: still unsent, acknowledged by
    the broker, confirmed by an ingest, confirmed and pruned since (it is in a received run but
    no longer a row), or never stored (the station dropped it: an ACK meant for another
    station)."""

    def __init__(self, store_path: Path) -> None:
        self.rows: dict[tuple[str, int], int] = {}
        self.runs: dict[str, list[tuple[int, int]]] = defaultdict(list)
        try:
            with sqlite3.connect(f"file:{store_path}?mode=ro", uri=True) as db:
                for station, seq, sent in db.execute("SELECT station, seq, sent FROM readings"):
                    self.rows[(station, seq)] = sent
                for station, first, end in db.execute(
                        "SELECT station, first_seq, end_seq FROM received_runs"):
                    self.runs[station].append((first, end))
        except sqlite3.Error as e:
            log.warning("cannot trace through the gateway store %s: %s", store_path, e)

    def hop(self, station: str, seq: int) -> str:
        sent = self.rows.get((station, seq))
        if sent is not None:  # the store's delivery states (gateway/store.py)
            return {0: "gateway:still unsent",
                    1: "gateway:acknowledged by the broker, unconfirmed, not in influx",
                    2: "gateway:confirmed by an ingest, not in influx"}.get(sent, f"sent={sent}")
        if any(first <= seq < end for first, end in self.runs.get(station, ())):
            return "gateway:confirmed and pruned, not in influx"
        return "never stored by the gateway"
