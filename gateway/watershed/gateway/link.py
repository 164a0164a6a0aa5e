"""One serial link (an RS-485 bus or a radio modem) and the thread that polls its stations.

The thread never dies of an error: a port that fails (USB unplugged, radio power-cycled) is
closed and reopened with backoff; anything else is logged with its traceback, counted, and the
loop carries on after a pause. A station's readings are never ACKed unless stored, so an error
anywhere only delays them.

No station can stop the others: an error while handling one station's frames ends only that
station's visit; it is counted per kind (``station_errors``), logged with its traceback once per
station and kind, and polling goes on with the next station.

``heartbeat`` (the watchdog's view, daemon.stale_loops) moves only with progress: a station
visit that ended without an error, the wait between rounds after such a round, and the reopen
backoff of a failed port (a missing adapter is a state the link handles, not a hang). A link
going round an unexpected error, or whose every station fails, stops it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import serial

from watershed.contracts import wire

from ..backoff import Backoff
from .config import LinkConfig, StationConfig
from .framed_port import FramedPort, SerialPort
from .identity import BusRegistry
from .poller import Poller
from .quarantine import Quarantine
from .store import Store, StoreFull

log = logging.getLogger(__name__)

# A remote operation run on the link's thread between polls: it gets the open port and the
# poller, or None for the port when the link is down.
PortOperation = Callable[[FramedPort | None, Poller], None]

READ_SLICE_S = 0.02  # port read timeout: how often a waiting reader checks its deadline
WRITE_TIMEOUT_S = 2.0
MAX_POLLS_PER_VISIT = 8  # a station with a backlog is drained this many frames at a time


def open_serial_port(config: LinkConfig) -> SerialPort:
    """A device path or any pyserial URL; exclusive, so two gateways cannot share a port."""
    return serial.serial_for_url(config.port, baudrate=config.baud, timeout=READ_SLICE_S,
                                 write_timeout=WRITE_TIMEOUT_S, exclusive=True)


class SerialLink:
    """Polls the stations of one link in turn, every ``poll_interval_s``, on its own thread."""

    def __init__(
        self,
        config: LinkConfig,
        store: Store,
        registry: Mapping[str, StationConfig],
        *,
        time_sync: bool,
        clock_synchronised: Callable[[], bool] = lambda: True,
        on_stored: Callable[[], None] = lambda: None,
        on_readings: Callable[[str, list[Any]], object] = lambda station, readings: None,
        open_port: Callable[[LinkConfig], SerialPort] = open_serial_port,
        clock: Callable[[], float] = time.time,
        reopen_backoff: Backoff | None = None,
        identity: BusRegistry | None = None,
        quarantine: Quarantine | None = None,
        before_cycle: Callable[[str], bool] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._open_port = open_port
        # Told the link's port before each poll cycle: where a simulation's clock moves (it
        # waits there for the other links), so each station is polled once a step. True: it
        # chose when this cycle begins, and the link keeps no schedule of its own.
        self._before_cycle = before_cycle or (lambda port: False)
        # The clock of the poll schedule, commit slots and the poller's timers: a simulation's
        # runs with its time (the reply timeout and the watchdog stay on the wall's).
        self._monotonic = monotonic
        self._counters: Counter[str] = Counter()
        self._station_errors: Counter[str] = Counter()  # per exception kind
        self._error_logged: set[tuple[int, str]] = set()  # (address, kind) logged once
        self._decoder = wire.FrameDecoder()
        self._poller = Poller(store, registry, self._counters,
                              reply_timeout_s=config.reply_timeout_s, time_sync=time_sync,
                              clock_synchronised=clock_synchronised, on_stored=on_stored,
                              on_readings=on_readings, clock=clock,
                              status_interval_s=config.status_interval_s,
                              backfill_interval_s=config.backfill_interval_s,
                              link=config.port, identity=identity, quarantine=quarantine,
                              monotonic=monotonic)
        self._operations: queue.Queue[PortOperation] = queue.Queue()
        self.heartbeat = time.monotonic()  # last progress: the watchdog's view (module docstring)
        self._backoff = reopen_backoff or Backoff(0.5, 30.0)
        self._commit_slot = self._slot()  # of the last commit (_commit_due)
        self._port: FramedPort | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"link {config.port}", daemon=True)

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the exchange in progress (so a stored batch still gets its ACK), then close."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("link %s: polling thread did not stop within %.0f s", self.config.port,
                          timeout_s)

    def link_quality(self) -> dict[str, float]:
        return self._poller.link_quality()

    def polls_address(self, addr: int) -> bool:
        return addr in self.config.stations

    def station_at(self, addr: int) -> str | None:
        return self._poller.station_at(addr)

    def submit(self, operation: PortOperation) -> None:
        """Run ``operation`` on this link's thread before its next poll (any thread)."""
        self._operations.put(operation)

    def stats(self) -> dict[str, Any]:
        counters: dict[str, Any] = dict(self._counters)
        counters["frames_ok"] = self._decoder.frames
        counters["frame_errors"] = dict(self._decoder.errors)
        counters["station_errors"] = dict(self._station_errors)
        counters["open"] = self.is_open
        return counters

    # --- the polling thread -----------------------------------------------------------

    def _run(self) -> None:
        log.info("link %s: polling addresses %s every %.1f s", self.config.port,
                 list(self.config.stations), self.config.poll_interval_s)
        next_cycle = self._monotonic()
        while not self._stopping.is_set():
            self._run_operations()
            try:
                if self._port is None:
                    self._open()
                paced = self._before_cycle(self.config.port)
                progressed = self._poll_cycle()
                self._backoff.reset()
            except (serial.SerialException, OSError) as e:
                self._counters["port_errors"] += 1
                delay = self._backoff.next_delay()
                log.warning("link %s: %s; reopening in %.1f s", self.config.port, e, delay)
                self._close()
                self._beat()
                self._wait_until(time.monotonic() + delay, beat=True)
                continue
            except StoreFull:
                # Logged once by the store (space.py), never a traceback per refusal. A known
                # state, not a stuck loop: the watchdog is still fed.
                self._counters["store_full_refusals"] += 1
                self._beat()
                self._wait_until(time.monotonic() + self._backoff.next_delay(), beat=True)
                continue
            except Exception:
                self._counters["internal_errors"] += 1
                delay = self._backoff.next_delay()
                log.exception("link %s: unexpected error; polling again in %.1f s",
                              self.config.port, delay)
                self._wait_until(time.monotonic() + delay, beat=False)
                continue
            now = self._monotonic()
            if paced:
                next_cycle = now
                if progressed:
                    self._beat()
                continue
            next_cycle = max(next_cycle + self.config.poll_interval_s, now)
            self._wait_until(time.monotonic() + next_cycle - now, beat=progressed)
        self._close()
        log.info("link %s: stopped", self.config.port)

    def _beat(self) -> None:
        self.heartbeat = time.monotonic()

    def _wait_until(self, deadline: float, beat: bool) -> None:
        """Sleep until the next cycle, waking for remote operations (and to beat the heart if
        the link is making progress)."""
        while not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stopping.wait(min(left, 1.0))
            if beat:
                self._beat()
            self._run_operations()

    def _run_operations(self) -> None:
        while True:
            try:
                operation = self._operations.get_nowait()
            except queue.Empty:
                return
            try:
                operation(self._port, self._poller)
            except (serial.SerialException, OSError) as e:
                self._counters["port_errors"] += 1
                log.warning("link %s: port failed during a remote operation: %s",
                            self.config.port, e)
                self._close()
            except Exception:
                self._counters["internal_errors"] += 1
                log.exception("link %s: remote operation failed", self.config.port)

    def _open(self) -> None:
        port = self._open_port(self.config)
        self._port = FramedPort(port, self._decoder, self._counters, self.config.wake_preamble)
        self._poller.forget_sessions()  # whoever is out there must say HELLO again
        self._counters["opens"] += 1
        log.info("link %s: opened at %d baud", self.config.port, self.config.baud)

    def _close(self) -> None:
        if self._port is not None:
            try:
                self._port.port.close()
            except (serial.SerialException, OSError) as e:
                log.debug("link %s: error while closing: %s", self.config.port, e)
            self._port = None

    def _poll_cycle(self) -> bool:
        """Visit every station once, then, if the commit is due, store what the stations sent
        in one commit and ACK it (held_readings.py: the SD card's sake); True if any visit
        ended without an error."""
        try:
            progressed = self._visit_stations()
            if self._port is not None and self._commit_due():
                for addr, error in self._poller.store_held(self._port):
                    self._station_failed(addr, error)
        except BaseException:
            self._poller.drop_held()  # a failed port or store: the stations keep them
            raise
        return progressed

    def _commit_due(self) -> bool:
        """Held readings are committed at the end of the first cycle of each commit slot
        (``commit_cycles`` poll intervals on the link's monotonic clock: links polling at one
        interval commit in the same cycle, and their commits are shared, group_commit.py),
        at once if any is a flood-mode reading, and when the link stops."""
        slot = self._slot()
        if slot == self._commit_slot and not self._poller.holds_event_readings() \
                and not self._stopping.is_set():
            return False
        self._commit_slot = slot
        return True

    def _slot(self) -> int:
        return int(self._monotonic() // (self.config.commit_cycles * self.config.poll_interval_s))

    def _visit_stations(self) -> bool:
        progressed = False
        for addr in self.config.stations:
            if self._poller.holds(addr):
                # Its readings wait for the commit; polled now it would send them again.
                progressed = True
                continue
            try:
                for _ in range(MAX_POLLS_PER_VISIT):
                    if self._stopping.is_set() or self._port is None:
                        return progressed
                    if not self._poller.poll(self._port, addr, hold=True):
                        break
            except (serial.SerialException, OSError, StoreFull):
                raise  # the port, or the disk under the store: the whole link backs off
            except Exception as e:
                self._station_failed(addr, e)
                continue
            progressed = True
            self._beat()
        return progressed

    def _station_failed(self, addr: int, error: Exception) -> None:
        """Count an error in one station's exchange; its traceback is logged once per station
        and kind (it would repeat at every poll), later ones at debug level."""
        kind = type(error).__name__
        self._station_errors[kind] += 1
        station = self._poller.station_at(addr) or "unknown station"
        if (addr, kind) in self._error_logged:
            log.debug("link %s: address %d (%s): %s again: %s", self.config.port, addr, station,
                      kind, error)
            return
        self._error_logged.add((addr, kind))
        log.error("link %s: address %d (%s): %s while handling its frames; its visit ends, the"
                  " other stations are polled; counted in station_errors, logged once",
                  self.config.port, addr, station, kind, exc_info=error)
