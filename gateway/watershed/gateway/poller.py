"""The gateway's half of the station exchange (contracts 1.5), one station at a time.

    POLL want=DATA|MORE (|HELLO until the station has said who it is)
        <- HELLO, DATA            in any order; DATA may come as up to 4 frames (DATA_MORE ...
                                  DATA, contracts 1.2), taken as one reply: one commit, one ACK
    store the readings durably, then
    ACK cumulative + ranges       computed from the store, never from what was just received
    TIME                          after a HELLO, only while this machine's clock is synchronised
                                  (clock_sync.py: asked of the OS at each TIME, never assumed)
        <- RESULT                 (and again when a STATUS shows the station's clock drifted)

Every ``status_interval_s`` the POLL also asks for STATUS: battery, clock, and ``oldest_seq``,
below which the station holds nothing; holes in what the gateway received that lie below it
are gone for good and go into the store's loss ledger. When a station says it has nothing more
to send, holes in its sequence above that are asked for with a backfill POLL (contracts 1.3),
at most every ``backfill_interval_s`` while the station has none of them to give.

While the store is full (the disk, or its quota: space.py) nothing is ACKed and DATA is not
asked for: a poll asks only for a HELLO or STATUS that is due, and is skipped if neither is.
DATA is asked for again when the store says taking it may succeed (``may_take_readings``).

Readings from an address are accepted only after that station's HELLO on this link: the
sequence numbers belong to the station id, and an address alone does not say which station
(a swapped board, a mis-set DIP switch). Unaccepted readings are not ACKed, so the station
keeps them and sends them again; nothing is lost by waiting for the HELLO.

The HELLO must fit the bus bindings (identity.py). One that does not puts the address in
dispute (address_disputes.py): HELLO is asked for at every poll, and its DATA is quarantined
(quarantine.py) until a HELLO fits again. Quarantined readings are stored durably and ACKed by
their seqs alone -- unless the address is shared: two stations answering one POLL (two HELLOs or
two DATA frames, also when they arrive only just before the ACK would go out). An ACK there
reaches every station at the address and could delete readings the gateway never got, so none
is sent; the stations keep their readings until an operator fixes the addresses. A seq that
arrives again with other content is quarantined too.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping

from watershed.contracts import wire
from watershed.contracts.channels import channel_name
from watershed.contracts.mqtt import MessageReading

from .config import UNASSIGNED_BASIN, StationConfig
from .address_disputes import MAX_ACK_RANGES, AddressDisputes
from .config_chunks import send_config
from .framed_port import FramedPort
from .held_readings import Held, HeldReadings, ran_out
from .identity import SEQ_REUSED, BusRegistry, Mismatch
from .late_replies import fullest, one_station
from .quarantine import Quarantine
from .station_session import StationSession
from .store import Added, Store, StoreFull

log = logging.getLogger(__name__)

QUALITY_WINDOW = 50  # polls over which a station's link quality is measured
MAX_CLOCK_OFFSET_S = 5.0  # a station clock further off than this is set again (if we may)

ReadingsHook = Callable[[str, list[MessageReading]], object]


class Poller:
    def __init__(
        self,
        store: Store,
        registry: Mapping[str, StationConfig],
        stats: Counter[str],
        *,
        reply_timeout_s: float,
        time_sync: bool,
        clock_synchronised: Callable[[], bool] = lambda: True,
        on_stored: Callable[[], None] = lambda: None,
        on_readings: ReadingsHook = lambda station, readings: None,
        clock: Callable[[], float] = time.time,
        status_interval_s: float = 300.0,
        backfill_interval_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        link: str = "",
        identity: BusRegistry | None = None,
        quarantine: Quarantine | None = None,
    ) -> None:
        self._store = store
        self._link = link  # the port: the bindings are per link
        self._identity = identity or BusRegistry(store, (), tuple(registry.values()))
        self._quarantine = quarantine or Quarantine("", store, registry)
        self._on_readings = on_readings
        self._status_interval_s = status_interval_s
        self._backfill_interval_s = backfill_interval_s
        self._monotonic = monotonic
        self._registry = registry
        self._stats = stats
        self._reply_timeout_s = reply_timeout_s
        self._time_sync = time_sync
        self._clock_synchronised = clock_synchronised
        self._on_stored = on_stored
        self._clock = clock
        self._sessions: dict[int, StationSession] = {}
        self._recent: dict[str, deque[bool]] = {}  # per station: did recent polls get answers
        self._warned: set[tuple[str, str]] = set()
        self._disputes = AddressDisputes(link, self._identity, self._quarantine, stats,
                                         self._warn_once)
        self._holding = False  # within poll(hold=True): short DATAs wait for store_held
        self._held = HeldReadings(store, stats, self._stored_held)

    def forget_sessions(self) -> None:
        """After the port was lost: every station must say HELLO again before its DATA counts."""
        self._sessions.clear()

    def link_quality(self) -> dict[str, float]:
        """Per station, the share of its recent polls that got a complete answer."""
        return {station: round(sum(recent) / len(recent), 3)
                for station, recent in list(self._recent.items()) if recent}

    def station_at(self, addr: int) -> str | None:
        session = self._sessions.get(addr)
        return None if session is None else session.station_id

    def _session(self, addr: int) -> StationSession:
        session = self._sessions.get(addr)
        if session is None:
            # The first STATUS one interval after the link opens: the first exchanges are
            # for readings.
            session = self._sessions[addr] = StationSession(
                next_status_at=self._monotonic() + self._status_interval_s)
        return session

    def poll(self, port: FramedPort, addr: int, hold: bool = False) -> bool:
        """One exchange with the station at ``addr``; True if it sent readings (more may wait).
        ``hold``: a short DATA's readings wait for ``store_held`` (the end of the link's cycle)
        to be stored and ACKed (held_readings.py)."""
        self._held.store_of(port, addr)  # else it would send them again
        self._holding = hold
        try:
            return self._poll(port, addr)
        finally:
            self._holding = False

    def store_held(self, port: FramedPort) -> list[tuple[int, Exception]]:
        """Store what the cycle held in one commit and ACK it; the addresses that failed."""
        return self._held.store_all(port)

    def holds(self, addr: int) -> bool:
        """``addr``'s readings wait for the link's commit (store_held)."""
        return self._held.holds(addr)

    def holds_event_readings(self) -> bool:
        return self._held.holds_event_readings()

    def drop_held(self) -> None:
        self._held.drop()

    def _poll(self, port: FramedPort, addr: int) -> bool:
        session = self._session(addr)
        taking = self._store.space.may_take_readings()
        status_due = self._monotonic() >= session.next_status_at
        ask_hello = session.needs_hello or session.dispute is not None
        want = ((wire.WANT_DATA | wire.WANT_MORE if taking else 0)
                | (wire.WANT_HELLO if ask_hello else 0)
                | (wire.WANT_STATUS if status_due else 0))
        if not want:
            return False  # the store is full and nothing else is due: the station keeps all
        wanted = (({wire.DATA} if taking else set())
                  | ({wire.HELLO} if ask_hello else set())
                  | ({wire.STATUS} if status_due else set()))
        port.discard_stale()
        port.send(wire.Poll(addr, want))
        self._stats["polls"] += 1
        frames, complete = port.collect(addr, wanted, self._reply_timeout_s)
        # A second station at this address answers right after; each reply's frames are one.
        reply = frames + port.waiting(addr)
        frames = wire.joined(reply)
        if session.station_id is not None:
            self._recent.setdefault(session.station_id, deque(maxlen=QUALITY_WINDOW)).append(
                complete)
        if not complete:
            self._stats["timeouts"] += 1
            # Silence may be a reboot or a swapped station: ask who it is next time.
            session.needs_hello = True
            log.debug("address %d: no complete reply within %.1f s", addr, self._reply_timeout_s)
        hellos = [f for f in frames if isinstance(f, wire.Hello)]
        datas = [f for f in frames if isinstance(f, wire.Data)]
        all_sent = len(datas) == 1 and ran_out(reply)  # (a late reply: which one ran out?)
        if (len(hellos) > 1 or len(datas) > 1) and not one_station(hellos, datas):
            self._disputes.on_shared(session, addr, [h.station_id for h in hellos])
        else:
            if len(datas) > 1:  # a late reply and this one: one holds what both did
                self._stats["late_replies"] += len(datas) - 1
                datas = [fullest(datas)]
            for hello in hellos:  # HELLO first whatever the order: it names whose DATA this is
                self._on_hello(session, hello)
        if status_due and complete:
            session.next_status_at = self._monotonic() + self._status_interval_s
        for status in (f for f in frames if isinstance(f, wire.Status)):
            self._on_status(session, status)
        got_readings = drained = False
        for data in datas:
            got_readings |= self._on_data(port, session, data, all_sent=all_sent)
            drained |= not data.readings
        # A short DATA held: the station sent all it had, as good as drained for its holes.
        drained |= self._held.holds(addr)
        if (session.needs_time and complete and session.station_id is not None
                and self._clock_synchronised()):
            self._send_time(port, session, addr)  # else kept due: sent once the clock is good
        if drained and session.station_id is not None and not got_readings:
            return self._fill_holes(port, session, addr)
        return got_readings

    # --- remote operations (run on the link's thread) ----------------------------------

    def backfill_now(self, port: FramedPort, addr: int, first: int, end: int) -> int:
        """Ask ``addr`` for ``[first, end)`` until it sends nothing new; readings stored."""
        session = self._session(addr)
        if session.station_id is None:
            raise LookupError(f"no station has said HELLO at address {addr} yet")
        before = self._stats["readings_new"]
        while self._backfill(port, session, addr, (first, end)):
            pass
        return self._stats["readings_new"] - before

    def push_config(self, port: FramedPort, addr: int, blob: bytes) -> wire.Result | None:
        """Send a station config in chunks (contracts 1.3 CONFIG); the station's RESULT after
        the last chunk, or None if it did not answer."""
        send_config(port, addr, blob)
        self._stats["configs_pushed"] += 1
        return self._result(port, addr, wire.CONFIG)

    def send_command(self, port: FramedPort, addr: int, code: int, args: bytes = b""
                     ) -> wire.Result | None:
        port.discard_stale()
        port.send(wire.Command(addr, code, args))
        self._stats["commands_sent"] += 1
        result = self._result(port, addr, wire.COMMAND)
        if code == wire.CMD_REBOOT:
            self._session(addr).needs_hello = True  # it comes back as a new boot
        return result

    def _result(self, port: FramedPort, addr: int, ref_type: int) -> wire.Result | None:
        frames, _ = port.collect(addr, {wire.RESULT}, self._reply_timeout_s)
        results = [f for f in frames if isinstance(f, wire.Result) and f.ref_type == ref_type]
        return results[0] if results else None

    # --- STATUS, holes and backfill -----------------------------------------------------

    def _on_status(self, session: StationSession, status: wire.Status) -> None:
        if session.station_id is None:
            return  # whose status is unknown until HELLO; asked again next time
        self._stats["statuses"] += 1
        station_id = session.station_id
        self._store.record_status(station_id, status)
        try:
            self._stats["readings_lost"] += self._store.settle_lost(station_id, status.oldest_seq)
        except StoreFull:
            pass  # noted by the store; settled at a STATUS after there is room again
        if status.clock and abs(status.clock - self._clock()) > MAX_CLOCK_OFFSET_S:
            self._stats["clock_drifts"] += 1
            log.info("station %s clock is %+.0f s off", station_id, status.clock - self._clock())
            session.needs_time = self._time_sync
        elif not status.state & wire.STATE_CLOCK_SYNCED:
            # Its readings are flagged CLOCK_UNSYNCED until a TIME comes, however close it is.
            self._stats["clock_unsynced"] += 1
            log.info("station %s says its clock is not synchronised", station_id)
            session.needs_time = self._time_sync

    def _fill_holes(self, port: FramedPort, session: StationSession, addr: int) -> bool:
        """The station has nothing unacknowledged left: whatever is missing below its next seq
        is a hole. Ask for the lowest one; True if readings came back."""
        now = self._monotonic()
        if now < session.next_backfill_at:
            return False
        assert session.station_id is not None
        holes = self._store.holes(session.station_id)
        if not holes:
            return False
        self._held.store_of(port, addr)  # what it just sent is no hole: stored and ACKed first
        holes = self._store.holes(session.station_id)
        return bool(holes) and self._backfill(port, session, addr, holes[0])

    def _backfill(self, port: FramedPort, session: StationSession, addr: int,
                  hole: tuple[int, int]) -> bool:
        port.discard_stale()
        port.send(wire.Poll(addr, wire.WANT_DATA | wire.WANT_MORE, 0, hole))
        self._stats["backfill_polls"] += 1
        log.info("station %s: asking again for seqs %d-%d", session.station_id, hole[0],
                 hole[1] - 1)
        frames = wire.joined(port.collect(addr, {wire.DATA}, self._reply_timeout_s)[0])
        before = self._stats["readings_new"]
        for data in (f for f in frames if isinstance(f, wire.Data)):
            self._on_data(port, session, data, backfill=True)
        # Only new readings count: a station repeating what is stored must not keep us here.
        got = self._stats["readings_new"] > before
        if got:
            session.next_backfill_at = 0.0  # more may follow: keep going while it answers
        else:
            # Nothing of it left at the station? Its next STATUS (due now) says if it is gone.
            session.next_backfill_at = self._monotonic() + self._backfill_interval_s
            session.next_status_at = 0.0
        return got

    # --- HELLO ------------------------------------------------------------------------

    def _on_hello(self, session: StationSession, hello: wire.Hello) -> None:
        self._stats["hellos"] += 1
        if not self._disputes.hello_fits(session, hello):
            return
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
        session.station_id = hello.station_id
        session.needs_hello = False
        session.needs_time = self._time_sync  # never push a clock this machine does not trust

    def _send_time(self, port: FramedPort, session: StationSession, addr: int) -> None:
        port.send(wire.TimeSync(addr, int(self._clock() * 1000)))
        self._stats["time_syncs"] += 1
        # Wait for the RESULT: on a shared bus nobody else may be polled while it is talking.
        result = self._result(port, addr, wire.TIME)
        if result is None:
            self._stats["time_sync_unanswered"] += 1  # tried again after the next good reply
            log.debug("address %d: no RESULT to TIME", addr)
            return
        session.needs_time = False
        if result.status != wire.RESULT_OK:
            log.warning("station %s refused TIME (status %d: %s)", session.station_id,
                        result.status, result.detail)

    # --- DATA -------------------------------------------------------------------------

    def _on_data(self, port: FramedPort, session: StationSession, data: wire.Data,
                 backfill: bool = False, all_sent: bool = False) -> bool:
        """Take a DATA's readings; True if the station may hold more (poll it again).
        ``all_sent``: its reply ended short (held_readings.ran_out)."""
        if session.dispute is not None:
            return self._disputes.quarantine_data(port, session, data)
        if session.station_id is None:
            self._stats["data_before_hello"] += 1
            session.needs_hello = True
            return False
        if not data.readings:
            if data.next_seq:
                self._store.record_next_seq(session.station_id, data.next_seq)
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
        reused = self._store.reused_seqs(station_id, readings)
        if reused:
            self._stats["readings_quarantined"] += self._quarantine.hold(
                Mismatch(SEQ_REUSED, station_id, station_id,
                         f"seqs {min(reused)}-{max(reused)} came again with other content"),
                self._link, data.addr, [r for r in data.readings if r.seq in reused])
            readings = [r for r in readings if r.seq not in reused]
        if self._holding and not backfill and all_sent:
            self._held.hold(Held(data.addr, station_id, basin, readings,
                                 self._disputes.ack_safe(port, session, data)))
            return False  # all it had: no need to poll it again this cycle
        try:
            added = self._store.add(station_id, basin, readings)  # durable before the ACK
        except StoreFull:
            # Noted and logged once by the store (space.py). No ACK: the station keeps them.
            self._stats["store_full_refusals"] += 1
            return False
        if backfill:
            self._stats["readings_backfilled"] += added.new
        self._stored_held(port, Held(data.addr, station_id, basin, readings,
                                     self._disputes.ack_safe(port, session, data)), added)
        return True

    def _stored_held(self, port: FramedPort, held: Held, added: Added) -> None:
        """Readings are durable: count them, tell who listens, ACK them if safe."""
        self._stats["readings_new"] += added.new
        self._stats["readings_duplicate"] += added.duplicate
        self._stats["readings_shed"] += added.shed
        if added.new:
            self._on_readings(held.station_id, held.readings)
            self._on_stored()
        if held.ack:
            port.send(self._ack(held.addr, held.station_id))
            self._stats["acks"] += 1

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
