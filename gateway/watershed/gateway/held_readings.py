"""Readings of short DATA frames held for the link's next commit, then stored in one durable
commit and ACKed (contracts 1.5): one commit every ``commit_cycles`` poll cycles, shared by the
links (link.py ``_commit_due``), rather than one a station, for the SD card's sake. A reply
whose last DATA had room for more was all its station had (``ran_out``), so it is not polled
again until its ACK has gone (it would send the same readings again); one that ends full is
stored and ACKed at once (the station is polled again to drain it). Flood-mode readings are
not held past their cycle. Nothing held is ACKed before it is durable; a port that fails drops
what is held and the stations send it again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watershed.contracts import wire
from watershed.contracts.mqtt import MessageReading

from .framed_port import FramedPort
from .store import Added, Store, StoreFull

log = logging.getLogger(__name__)

# The most bytes one reading takes in a DATA (the longest seq gap, time step and value).
MAX_READING_BYTES = 27


def ran_out(reply: list[wire.Frame]) -> bool:
    """A reply's frames (before ``wire.joined``) end in a DATA that stopped for want of
    readings, not of room: it had room for the largest reading, and it closes fewer than
    ``MAX_DATA_FRAMES`` frames (a station answering MORE sends DATA_MORE while it has more and
    frames left, contracts 1.2). What it sent was all it had."""
    last, frames, count = None, 0, 0
    for frame in reply:
        if frame.type in (wire.DATA, wire.DATA_MORE):
            count += 1
        if frame.type == wire.DATA:
            last, frames, count = frame, count, 0
    return (isinstance(last, wire.Data) and frames < wire.MAX_DATA_FRAMES
            and len(wire.encode_body(last)) + MAX_READING_BYTES <= wire.MAX_BODY)


@dataclass(frozen=True)
class Held:
    """Readings taken from a station, to be stored and ACKed with the link's next commit."""

    addr: int
    station_id: str
    basin: str
    readings: list[MessageReading]
    ack: bool  # no other station answered at the address (ack_safe, right after the reply)


# (port, held, what the store made of it): count, tell who listens, ACK if safe
Stored = Callable[[FramedPort, Held, Added], None]


class HeldReadings:
    def __init__(self, store: Store, stats: Any, stored: Stored) -> None:
        self._store = store
        self._stats = stats
        self._stored = stored
        self._held: list[Held] = []

    def hold(self, held: Held) -> None:
        self._held.append(held)

    def holds(self, addr: int) -> bool:
        return any(h.addr == addr for h in self._held)

    def holds_event_readings(self) -> bool:
        """Flood-mode readings are held: the commit must not wait for its slot."""
        return any(r.flags & wire.EVENT for h in self._held for r in h.readings)

    def store_all(self, port: FramedPort) -> list[tuple[int, Exception]]:
        """Store the readings held (one durable transaction if all go), then ACK each station.
        Returns the addresses whose readings failed otherwise than for a full store, and why
        (not ACKed: the station sends them again)."""
        held, self._held = self._held, []
        if not held:
            return []
        try:
            outcomes = self._store.add_many([(h.station_id, h.basin, h.readings)
                                             for h in held])
        except Exception as e:  # noqa: BLE001 -- every station's, reported per station
            outcomes = [e] * len(held)
        failed = []
        for h, outcome in zip(held, outcomes, strict=True):
            if isinstance(outcome, StoreFull):
                # Noted and logged once by the store (space.py). No ACK: the station keeps them.
                self._stats["store_full_refusals"] += 1
            elif isinstance(outcome, Exception):
                failed.append((h.addr, outcome))
            else:
                self._stored(port, h, outcome)
        return failed

    def store_of(self, port: FramedPort, addr: int) -> None:
        """Readings held of ``addr`` (with all others held) stored and ACKed now; raises what
        failed ``addr``'s (the link counts it against that station)."""
        if not self.holds(addr):
            return
        failed = self.store_all(port)
        for other, error in failed:
            if other != addr:
                self._stats["held_store_errors"] += 1
                log.error("address %d: readings held this cycle could not be stored (%r);"
                          " not ACKed, the station sends them again", other, error)
        for _, error in (f for f in failed if f[0] == addr):
            raise error

    def drop(self) -> None:
        """The port failed mid-cycle: nothing held is stored or ACKed (the stations keep it)."""
        self._held.clear()
