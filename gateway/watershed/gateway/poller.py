"""The gateway's half of the station exchange (contracts 1.5), one station at a time.

    POLL want=DATA (|HELLO until the station has said who it is)
        <- HELLO, DATA            in any order
    store the readings durably, then
    ACK cumulative + ranges       computed from the store, never from what was just received
    TIME                          after a HELLO, only while this machine's clock is synchronised
        <- RESULT

Readings from an address are accepted only after that station's HELLO on this link: the
sequence numbers belong to the station id, and an address alone does not say which station
(a swapped board, a mis-set DIP switch). Unaccepted readings are not ACKed, so the station
keeps them and sends them again; nothing is lost by waiting for the HELLO.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from watershed.contracts import wire
from watershed.contracts.channels import channel_name
from watershed.contracts.mqtt import MessageReading

from .config import UNASSIGNED_BASIN, StationConfig
from .framed_port import FramedPort
from .store import Store

log = logging.getLogger(__name__)

MAX_ACK_RANGES = 16  # a bounded ACK; more holes than this mean a backfill is due anyway


@dataclass
class _Session:
    """What the gateway knows of the station at one address since the link opened."""

    station_id: str | None = None
    needs_hello: bool = True
    needs_time: bool = False  # set by a HELLO; cleared when the station answers TIME


class Poller:
    def __init__(
        self,
        store: Store,
        registry: Mapping[str, StationConfig],
        stats: Counter[str],
        *,
        reply_timeout_s: float,
        time_sync: bool,
        on_stored: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._registry = registry
        self._stats = stats
        self._reply_timeout_s = reply_timeout_s
        self._time_sync = time_sync
        self._on_stored = on_stored
        self._clock = clock
        self._sessions: dict[int, _Session] = {}
        self._warned: set[tuple[str, str]] = set()

    def forget_sessions(self) -> None:
        """After the port was lost: every station must say HELLO again before its DATA counts."""
        self._sessions.clear()

    def poll(self, port: FramedPort, addr: int) -> bool:
        """One exchange with the station at ``addr``; True if it sent readings (more may wait)."""
        session = self._sessions.setdefault(addr, _Session())
        want = wire.WANT_DATA | (wire.WANT_HELLO if session.needs_hello else 0)
        wanted = {wire.DATA} | ({wire.HELLO} if session.needs_hello else set())
        port.discard_stale()
        port.send(wire.Poll(addr, want))
        self._stats["polls"] += 1
        frames, complete = port.collect(addr, wanted, self._reply_timeout_s)
        if not complete:
            self._stats["timeouts"] += 1
            # Silence may be a reboot or a swapped station: ask who it is next time.
            session.needs_hello = True
            log.debug("address %d: no complete reply within %.1f s", addr, self._reply_timeout_s)
        hellos = [f for f in frames if isinstance(f, wire.Hello)]
        for hello in hellos:  # HELLO first whatever the order: it names whose DATA this is
            self._on_hello(session, hello)
        got_readings = False
        for data in (f for f in frames if isinstance(f, wire.Data)):
            got_readings |= self._on_data(port, session, data)
        if session.needs_time and complete:
            self._send_time(port, session, addr)
        return got_readings

    # --- HELLO ------------------------------------------------------------------------

    def _on_hello(self, session: _Session, hello: wire.Hello) -> None:
        self._stats["hellos"] += 1
        previous = self._store.record_hello(hello)
        cause = (wire.RESET_CAUSES[hello.reset_cause] if hello.reset_cause < len(wire.RESET_CAUSES)
                 else f"cause {hello.reset_cause}")
        if session.station_id not in (None, hello.station_id):
            log.warning("address %d: station %s answered where %s was", hello.addr,
                        hello.station_id, session.station_id)
        if previous is None:
            log.info("station %s at address %d: first contact (firmware %s, boot %d, %s, next seq"
                     " %d)", hello.station_id, hello.addr, hello.firmware, hello.boot_count, cause,
                     hello.next_seq)
        elif previous.boot_count != hello.boot_count:
            self._stats["reboots"] += 1
            log.info("station %s at address %d rebooted (boot %d, %s, next seq %d)",
                     hello.station_id, hello.addr, hello.boot_count, cause, hello.next_seq)
        highest = self._store.highest_seq(hello.station_id)
        if highest is not None and hello.next_seq <= highest:
            self._stats["seq_regressions"] += 1
            log.warning("station %s says its next seq is %d but seq %d is already stored: its "
                        "sequence went backwards; readings reusing stored seqs are kept as "
                        "conflicts", hello.station_id, hello.next_seq, highest)
        registered = self._registry.get(hello.station_id)
        if registered is not None and registered.address != hello.addr:
            self._warn_once(hello.station_id, "address",
                            "station %s answered at address %d, registered at %d",
                            hello.station_id, hello.addr, registered.address)
        session.station_id = hello.station_id
        session.needs_hello = False
        session.needs_time = self._time_sync  # never push a clock this machine does not trust

    def _send_time(self, port: FramedPort, session: _Session, addr: int) -> None:
        port.send(wire.TimeSync(addr, int(self._clock() * 1000)))
        self._stats["time_syncs"] += 1
        # Wait for the RESULT: on a shared bus nobody else may be polled while it is talking.
        frames, _ = port.collect(addr, {wire.RESULT}, self._reply_timeout_s)
        results = [f for f in frames if isinstance(f, wire.Result) and f.ref_type == wire.TIME]
        if not results:
            self._stats["time_sync_unanswered"] += 1  # tried again after the next good reply
            log.debug("address %d: no RESULT to TIME", addr)
            return
        session.needs_time = False
        if results[0].status != wire.RESULT_OK:
            log.warning("station %s refused TIME (status %d: %s)", session.station_id,
                        results[0].status, results[0].detail)

    # --- DATA -------------------------------------------------------------------------

    def _on_data(self, port: FramedPort, session: _Session, data: wire.Data) -> bool:
        if session.station_id is None:
            self._stats["data_before_hello"] += 1
            session.needs_hello = True
            return False
        if not data.readings:
            return False
        station_id = session.station_id
        registered = self._registry.get(station_id)
        if registered is None:
            self._warn_once(station_id, "unregistered",
                            "station %s is not in the registry: its readings are forwarded with "
                            "basin %r", station_id, UNASSIGNED_BASIN)
        basin = registered.basin if registered else UNASSIGNED_BASIN
        channels = dict(registered.channels) if registered else None
        readings = [MessageReading(r.seq, channel_name(r.channel, channels), r.time, r.mantissa,
                                   r.exponent, r.flags) for r in data.readings]
        added = self._store.add(station_id, basin, readings)  # durable before the ACK goes out
        self._stats["readings_new"] += added.new
        self._stats["readings_duplicate"] += added.duplicate
        if added.new:
            self._on_stored()
        port.send(self._ack(data.addr, station_id))
        self._stats["acks"] += 1
        return True

    def _ack(self, addr: int, station_id: str) -> wire.Ack:
        cumulative, ranges = self._store.ack_ranges(station_id)
        # Keep the highest ranges: they hold what the station sent last and may still hold.
        ranges = ranges[-MAX_ACK_RANGES:]
        while True:
            ack = wire.Ack(addr, cumulative, ranges)
            try:
                wire.encode_body(ack)
                return ack
            except ValueError:  # huge gaps make long varints; drop the oldest range
                ranges = ranges[1:]

    def _warn_once(self, station_id: str, what: str, message: str, *args: object) -> None:
        if (station_id, what) not in self._warned:
            self._warned.add((station_id, what))
            log.warning(message, *args)
