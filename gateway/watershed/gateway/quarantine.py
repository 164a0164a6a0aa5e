"""Readings whose sender is in doubt, kept apart until an operator says whose they are.

The poller hands over a HELLO or DATA that does not fit the bus bindings (identity.py), or a
seq reused with other content. Its readings are stored durably in an entry of their case
(kind, link, address, bound id, claimed id) -- so ACKing them to the station is safe -- and are
forwarded under neither id. Opening an entry raises an identity alert naming both ids (stored,
then published like a flood alert, contracts.md 2), once per entry.

An operator then, with ``watershed gateway quarantine`` or the ``quarantine`` remote operation:
- ``release ID --to STATION``: the readings enter the store under that station (its registry
  basin and channel names) and are forwarded as usual; readings it has stored already are
  duplicates, as any retransmission;
- ``drop ID``: the readings that station ``claimed`` has not delivered otherwise (for a reused
  seq: all of them) are counted in its loss ledger under ``quarantined``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from watershed.contracts import wire
from watershed.contracts.channels import channel_name
from watershed.contracts.mqtt import PAYLOAD_VERSION, MessageReading

from .config import UNASSIGNED_BASIN, StationConfig
from .identity import SEQ_REUSED, Mismatch
from .store import QUARANTINED, QuarantineEntry, Store

log = logging.getLogger(__name__)


class QuarantineError(ValueError):
    """An operator's quarantine command that cannot be done (names what is wrong)."""


class Quarantine:
    """Holds doubtful readings and settles them; thread-safe (links call ``hold``)."""

    def __init__(self, gateway_id: str, store: Store, registry: Mapping[str, StationConfig], *,
                 on_alert: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.time) -> None:
        self._gateway_id = gateway_id
        self._store = store
        self._registry = registry
        self._on_alert = on_alert
        self._clock = clock
        self._lock = threading.Lock()  # one entry per case, even with two links at once

    def hold(self, mismatch: Mismatch, link: str, addr: int,
             readings: Sequence[wire.Reading] = ()) -> int:
        """Keep ``readings`` (none: a HELLO only) in the entry of this case, durable on return;
        returns how many were new to it."""
        with self._lock:
            entry, opened = self._store.quarantine_case(mismatch.kind, link, addr,
                                                        mismatch.bound, mismatch.claimed)
            new = self._store.quarantine_add(entry, readings) if readings else 0
        if opened:
            self._alert(entry, mismatch, link, addr)
        return new

    def _alert(self, entry: int, mismatch: Mismatch, link: str, addr: int) -> None:
        body = {"v": PAYLOAD_VERSION, "gateway": self._gateway_id, "station": mismatch.claimed,
                "rule": "identity", "case": mismatch.kind, "bound": mismatch.bound,
                "claimed": mismatch.claimed, "link": link, "address": addr,
                "quarantine": entry, "detail": mismatch.detail, "raised_at": int(self._clock())}
        self._store.add_alert(mismatch.claimed, json.dumps(body, separators=(",", ":")))
        self._on_alert()
        log.warning("IDENTITY ALERT quarantine %d (%s): %s answered at address %d on %s where %s"
                    " is bound: %s; its readings are held, not forwarded", entry, mismatch.kind,
                    mismatch.claimed, addr, link, mismatch.bound or "no station", mismatch.detail)

    # --- the operator's side ----------------------------------------------------------

    def entries(self, state: str | None = "open") -> list[QuarantineEntry]:
        return self._store.quarantine_entries(state=state)

    def entry(self, entry_id: int) -> QuarantineEntry:
        found = self._store.quarantine_entries(entry_id, state=None)
        if not found:
            raise QuarantineError(f"no quarantine entry {entry_id}")
        if found[0].state != "open":
            raise QuarantineError(f"quarantine entry {entry_id} was {found[0].state} already")
        return found[0]

    def release(self, entry_id: int, station: str) -> dict[str, int]:
        """Store entry ``entry_id``'s readings under ``station``; returns new and duplicate."""
        entry = self.entry(entry_id)
        if self._store.ack_floor(station) is None:
            # Its first readings here set where its ACKs start (store.ack_ranges): readings
            # released before its own would put that floor above readings it still holds.
            raise QuarantineError(f"station {station} has sent this gateway no readings yet: "
                                  "release once it has")
        registered = self._registry.get(station)
        basin = registered.basin if registered else UNASSIGNED_BASIN
        channels = dict(registered.channels) if registered else None
        readings = [MessageReading(r.seq, channel_name(r.channel, channels), r.time, r.mantissa,
                                   r.exponent, r.flags)
                    for r in self._store.quarantined_readings(entry.id)]
        added = self._store.add(station, basin, readings)
        self._store.settle_quarantine(entry.id, "released", to=station)
        log.warning("quarantine %d released to station %s: %d readings, %d new, %d stored"
                    " already", entry.id, station, len(readings), added.new, added.duplicate)
        return {"readings": len(readings), "new": added.new, "duplicate": added.duplicate}

    def drop(self, entry_id: int) -> dict[str, int]:
        """Give up entry ``entry_id``; what its claimed station has not delivered otherwise goes
        into that station's loss ledger (``quarantined``). Returns readings and lost."""
        entry = self.entry(entry_id)
        readings = self._store.quarantined_readings(entry.id)
        if entry.kind == SEQ_REUSED:  # their seqs are taken by other readings: none delivered
            lost = len(readings)
        else:
            seqs = {r.seq for r in readings}
            lost = len(seqs - self._store.received_seqs(entry.claimed, seqs))
        self._store.settle_quarantine(entry.id, "dropped", lost_station=entry.claimed, lost=lost)
        log.warning("quarantine %d dropped: %d readings, %d of them never delivered by %s,"
                    " counted lost (%s)", entry.id, entry.readings, lost, entry.claimed,
                    QUARANTINED)
        return {"readings": entry.readings, "lost": lost}


def summary(store: Store) -> dict[str, Any]:
    """Health's ``quarantine``: open entries, their readings, per case and per claimed id."""
    entries = store.quarantine_entries()
    cases: dict[str, int] = {}
    stations: dict[str, int] = {}
    for e in entries:
        cases[e.kind] = cases.get(e.kind, 0) + e.readings
        stations[e.claimed] = stations.get(e.claimed, 0) + e.readings
    return {"count": len(entries), "readings": sum(e.readings for e in entries),
            "oldest_at": int(min(e.opened_at for e in entries)) if entries else None,
            "cases": cases, "stations": stations}


def describe(entry: QuarantineEntry) -> dict[str, Any]:
    """An entry as JSON-ready fields (the CLI and the remote operation print these)."""
    return {k: (int(v) if k.endswith("_at") and v is not None else v)
            for k, v in asdict(entry).items()}
