"""The gateway's side of the station exchange, over an in-memory port that answers like a station.

No pty, no thread: each test scripts what the "station" answers to each frame it receives.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import serial

from watershed.contracts import wire
from watershed.contracts.mqtt import MessageReading
from watershed.contracts.wire import Reading
from watershed.backoff import Backoff
from watershed.gateway.config import LinkConfig, StationConfig
from watershed.gateway.framed_port import FramedPort
from watershed.gateway.link import SerialLink
from watershed.gateway.poller import MAX_ACK_RANGES, Poller
from watershed.gateway.store import AckRanges, Store, StoreError

T0 = 1763676900
NOW = 1763680000.25
ADDR = 7

Responder = Callable[[wire.Frame], list[wire.Frame]]


class ScriptedPort:
    """A serial port whose far end is a function: every frame written gets its reply frames."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.received: list[wire.Frame] = []  # what the gateway sent, decoded
        self._decoder = wire.FrameDecoder()
        self._inbox = bytearray()

    def write(self, data: bytes) -> int:
        for frame in self._decoder.feed(data):
            assert not isinstance(frame, wire.FrameError), frame
            self.received.append(frame)
            for reply in self.respond(frame):
                self._inbox += wire.encode_frame(reply)
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def in_waiting(self) -> int:
        return len(self._inbox)

    def read(self, size: int = 1) -> bytes:
        if not self._inbox:
            time.sleep(0.001)
            return b""
        data = bytes(self._inbox[:size])
        del self._inbox[:size]
        return data

    def close(self) -> None:
        pass

    def sent(self, frame_type: type) -> list:
        return [f for f in self.received if isinstance(f, frame_type)]


def hello(station_id: str = "SAN-01", boot_count: int = 1, next_seq: int = 44) -> wire.Hello:
    return wire.Hello(ADDR, station_id, "1.0.0", 0x1234, 1, boot_count, next_seq, 0)


def data(*readings: Reading) -> wire.Data:
    return wire.Data(ADDR, tuple(readings))


STAGE = [Reading.from_text(41, 1, T0, "+1.234"), Reading.from_text(42, 1, T0 + 900, "1.50"),
         Reading(43, 128, T0 + 900, 7, 0), Reading(44, 200, T0 + 900, 0, 0, wire.MISSING)]


def station(replies: dict[int, list[wire.Frame]]) -> Responder:
    """Answers POLL with ``replies[want]`` and TIME with RESULT ok."""
    def respond(frame: wire.Frame) -> list[wire.Frame]:
        if isinstance(frame, wire.Poll):
            return list(replies.get(frame.want, []))
        if isinstance(frame, wire.TimeSync):
            return [wire.Result(ADDR, wire.TIME, wire.RESULT_OK)]
        return []
    return respond


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "gw.db") as s:
        yield s


REGISTRY = {"SAN-01": StationConfig("SAN-01", ADDR, "santiago", {128: "stage_backup_m"})}


def make_poller(store: Store, *, time_sync: bool = True, timeout_s: float = 0.2,
                registry: dict | None = None) -> tuple[Poller, Counter]:
    stats: Counter[str] = Counter()
    poller = Poller(store, REGISTRY if registry is None else registry, stats,
                    reply_timeout_s=timeout_s, time_sync=time_sync, clock=lambda: NOW)
    return poller, stats


def framed(port: ScriptedPort, stats: Counter) -> FramedPort:
    return FramedPort(port, wire.FrameDecoder(), stats)


# The poller asks for a whole reply (WANT_MORE: up to 4 DATA frames, contracts 1.2).
WANT_DATA = wire.WANT_DATA | wire.WANT_MORE
HELLO_DATA = wire.WANT_HELLO | WANT_DATA


def test_first_poll_asks_hello_then_stores_acks_and_sets_the_clock(store: Store) -> None:
    poller, stats = make_poller(store)
    port = ScriptedPort(station({HELLO_DATA: [hello(), data(*STAGE)]}))
    assert poller.poll(framed(port, stats), ADDR) is True
    assert port.received[0] == wire.Poll(ADDR, HELLO_DATA)
    assert port.sent(wire.Ack) == [wire.Ack(ADDR, 45)]
    assert port.sent(wire.TimeSync) == [wire.TimeSync(ADDR, int(NOW * 1000))]
    rows = store.unsent(10)
    assert [(r.station, r.basin, r.reading.channel) for r in rows] == [
        ("SAN-01", "santiago", "stage_m"), ("SAN-01", "santiago", "stage_m"),
        ("SAN-01", "santiago", "stage_backup_m"), ("SAN-01", "santiago", "ch200")]
    assert [(r.reading.mantissa, r.reading.exponent, r.reading.flags) for r in rows] == [
        (1234, -3, 0), (150, -2, 0), (7, 0, 0), (0, 0, wire.MISSING)]
    assert stats["readings_new"] == 4 and stats["acks"] == 1 and stats["time_syncs"] == 1
    assert stats["time_sync_unanswered"] == 0


def test_later_polls_ask_only_for_data(store: Store) -> None:
    poller, stats = make_poller(store)
    port = ScriptedPort(station({HELLO_DATA: [hello(), data(*STAGE[:2])],
                                 WANT_DATA: [data(*STAGE[2:])]}))
    poller.poll(framed(port, stats), ADDR)
    poller.poll(framed(port, stats), ADDR)
    assert [p.want for p in port.sent(wire.Poll)] == [HELLO_DATA, WANT_DATA]
    assert port.sent(wire.Ack) == [wire.Ack(ADDR, 43), wire.Ack(ADDR, 45)]
    assert len(port.sent(wire.TimeSync)) == 1


def test_hello_after_data_in_one_reply_still_names_the_data(store: Store) -> None:
    poller, stats = make_poller(store)
    port = ScriptedPort(station({HELLO_DATA: [data(*STAGE), hello()]}))
    poller.poll(framed(port, stats), ADDR)
    assert store.ack_ranges("SAN-01") == AckRanges(45, ())
    assert port.sent(wire.Ack) == [wire.Ack(ADDR, 45)]


def test_data_from_a_station_that_never_said_hello_is_not_acked(store: Store) -> None:
    poller, stats = make_poller(store, timeout_s=0.05)
    port = ScriptedPort(station({HELLO_DATA: [data(*STAGE)]}))
    assert poller.poll(framed(port, stats), ADDR) is False
    assert port.sent(wire.Ack) == [] and store.unsent(10) == []
    assert stats["data_before_hello"] == 1 and stats["timeouts"] == 1


def test_no_time_is_pushed_when_time_sync_is_off(store: Store) -> None:
    poller, stats = make_poller(store, time_sync=False)
    port = ScriptedPort(station({HELLO_DATA: [hello(), data(*STAGE)]}))
    poller.poll(framed(port, stats), ADDR)
    assert port.sent(wire.TimeSync) == [] and len(port.sent(wire.Ack)) == 1


def test_readings_are_not_acked_when_the_store_fails(store: Store, monkeypatch) -> None:
    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(store, "add", disk_full)
    poller, stats = make_poller(store)
    port = ScriptedPort(station({HELLO_DATA: [hello(), data(*STAGE)]}))
    with pytest.raises(OSError):
        poller.poll(framed(port, stats), ADDR)
    assert port.sent(wire.Ack) == []


def test_unregistered_station_is_stored_as_unassigned(store: Store, caplog) -> None:
    poller, stats = make_poller(store, registry={})
    port = ScriptedPort(station({HELLO_DATA: [hello("NEW-9"), data(*STAGE)],
                                 WANT_DATA: [data(*STAGE)]}))
    poller.poll(framed(port, stats), ADDR)
    poller.poll(framed(port, stats), ADDR)
    rows = store.unsent(10)
    assert {(r.station, r.basin) for r in rows} == {("NEW-9", "unassigned")}
    assert rows[2].reading.channel == "ch128"  # no registry entry names it
    assert sum("not in the registry" in r.message for r in caplog.records) == 1


def test_silence_makes_the_gateway_ask_for_hello_again(store: Store) -> None:
    poller, stats = make_poller(store, timeout_s=0.05)
    answers = {HELLO_DATA: [hello(), data(*STAGE[:1])], WANT_DATA: []}
    port = ScriptedPort(station(answers))
    poller.poll(framed(port, stats), ADDR)
    poller.poll(framed(port, stats), ADDR)  # no answer
    poller.poll(framed(port, stats), ADDR)
    assert [p.want for p in port.sent(wire.Poll)] == [HELLO_DATA, WANT_DATA, HELLO_DATA]
    assert stats["timeouts"] == 1


def test_empty_data_is_not_acked(store: Store) -> None:
    poller, stats = make_poller(store)
    empty = wire.Data(ADDR, (), next_seq=41, base_time=T0)
    port = ScriptedPort(station({HELLO_DATA: [hello(), empty]}))
    assert poller.poll(framed(port, stats), ADDR) is False
    assert port.sent(wire.Ack) == []


def test_a_reboot_is_logged_and_counted(store: Store) -> None:
    poller, stats = make_poller(store, timeout_s=0.05)
    replies = {HELLO_DATA: [hello(boot_count=1)], WANT_DATA: []}
    port = ScriptedPort(station(replies))
    poller.poll(framed(port, stats), ADDR)
    replies[WANT_DATA] = [hello(boot_count=2), wire.Data(ADDR, (), 44, T0)]
    poller.poll(framed(port, stats), ADDR)
    assert stats["reboots"] == 1 and stats["hellos"] == 2
    assert store.station("SAN-01").boot_count == 2  # type: ignore[union-attr]


def test_ack_with_many_holes_is_bounded_and_keeps_the_newest(store: Store) -> None:
    every_other = [MessageReading(s, "stage_m", T0, 1, 0, 0) for s in range(1, 200, 2)]
    store.add("SAN-01", "santiago", every_other)
    poller, stats = make_poller(store)
    newest = Reading(1001, 1, T0, 5, 0)
    port = ScriptedPort(station({HELLO_DATA: [hello(next_seq=1002), data(newest)]}))
    poller.poll(framed(port, stats), ADDR)
    (ack,) = port.sent(wire.Ack)
    assert ack.cumulative == 2 and len(ack.ranges) == MAX_ACK_RANGES
    assert ack.ranges[-1] == (1001, 1002)
    assert len(wire.encode_body(ack)) <= wire.MAX_BODY


def test_echoed_and_foreign_frames_are_ignored(store: Store) -> None:
    poller, stats = make_poller(store)

    def echoing_bus(frame: wire.Frame) -> list[wire.Frame]:
        replies: list[wire.Frame] = [frame]  # an RS-485 adapter that hears itself
        if isinstance(frame, wire.Poll):
            replies += [wire.Hello(ADDR + 1, "OTHER", "1", 0, 0, 0, 1, 0), hello(), data(*STAGE)]
        return replies

    port = ScriptedPort(echoing_bus)
    poller.poll(framed(port, stats), ADDR)
    assert stats["stray_frames"] >= 2
    assert {r.station for r in store.unsent(10)} == {"SAN-01"}


# --- the link thread ------------------------------------------------------------------


def test_link_survives_port_errors_and_keeps_polling(store: Store) -> None:
    port = ScriptedPort(station({HELLO_DATA: [hello(), data(*STAGE)]}))
    attempts = []

    def flaky_open(config: LinkConfig) -> ScriptedPort:
        attempts.append(time.monotonic())
        if len(attempts) <= 2:
            raise serial.SerialException("could not open port /dev/ttyUSB0: No such device")
        return port

    stored = threading.Event()
    link = SerialLink(LinkConfig("/dev/ttyUSB0", stations=(ADDR,), poll_interval_s=0.05,
                                 reply_timeout_s=0.2),
                      store, REGISTRY, time_sync=False, on_stored=stored.set,
                      open_port=flaky_open, reopen_backoff=Backoff(0.01, 0.05))
    link.start()
    try:
        assert stored.wait(5)
    finally:
        link.stop()
    stats = link.stats()
    assert stats["port_errors"] == 2 and stats["opens"] == 1 and stats["readings_new"] == 4
    assert stats["frames_ok"] >= 2 and stats["open"] is False


def test_link_survives_an_unexpected_error(store: Store, monkeypatch) -> None:
    calls = []

    def add_failing_once(*args: object, real=store.add_many) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return real(*args)

    monkeypatch.setattr(store, "add_many", add_failing_once)
    port = ScriptedPort(station({HELLO_DATA: [hello(), data(*STAGE)],
                                 WANT_DATA: [data(*STAGE)]}))
    stored = threading.Event()
    link = SerialLink(LinkConfig("p", stations=(ADDR,), poll_interval_s=0.01, reply_timeout_s=0.2),
                      store, REGISTRY, time_sync=False, on_stored=stored.set,
                      open_port=lambda config: port, reopen_backoff=Backoff(0.01, 0.05))
    link.start()
    try:
        assert stored.wait(5)
    finally:
        link.stop()
    assert link.stats()["station_errors"] == {"RuntimeError": 1}
    assert len(store.unsent(10)) == 4


def test_a_link_a_simulation_paces_waits_no_interval_and_commits_on_the_clock_given(
        store: Store) -> None:
    """A simulation's barrier decides when each cycle begins (before_cycle returns True): the
    link waits out no poll interval of its own, and its commit slots follow the monotonic
    clock it is given: frozen, the short reply it holds waits for the commit (its station is
    not polled again meanwhile); moved a poll interval a cycle, it is stored at the end of the
    cycle."""
    def run(cycle_moves_clock: bool) -> tuple[int, int]:
        port = ScriptedPort(station({HELLO_DATA: [hello(), data(*STAGE[:2])],
                                     WANT_DATA: [data()]}))
        clock = [1000.0]
        cycles = threading.Semaphore(0)

        def before_cycle(link_port: str) -> bool:
            if cycle_moves_clock:
                clock[0] += 60.0
            cycles.release()
            return True

        link = SerialLink(LinkConfig("p", stations=(ADDR,), poll_interval_s=60.0,
                                     reply_timeout_s=0.2),
                          store, REGISTRY, time_sync=False, open_port=lambda config: port,
                          before_cycle=before_cycle, monotonic=lambda: clock[0])
        link.start()
        try:
            for _ in range(5):  # an hour's wait on its own 60 s schedule
                assert cycles.acquire(timeout=5)
            stored = len(store.unsent(10))
        finally:
            link.stop()
        return stored, len(port.sent(wire.Poll))

    assert run(cycle_moves_clock=False) == (0, 1)
    stored, polls = run(cycle_moves_clock=True)
    assert stored == 2 and polls >= 4


def test_unanswered_time_is_sent_again_after_the_next_reply(store: Store) -> None:
    poller, stats = make_poller(store, timeout_s=0.05)
    results: list[wire.Frame] = []
    base = station({HELLO_DATA: [hello(), data(*STAGE[:1])], WANT_DATA: [data(*STAGE[1:])]})

    def respond(frame: wire.Frame) -> list[wire.Frame]:
        return results if isinstance(frame, wire.TimeSync) else base(frame)

    port = ScriptedPort(respond)
    poller.poll(framed(port, stats), ADDR)  # TIME unanswered
    results.append(wire.Result(ADDR, wire.TIME, wire.RESULT_REJECTED, "clock locked"))
    poller.poll(framed(port, stats), ADDR)  # TIME again; refused: not pushed any more
    poller.poll(framed(port, stats), ADDR)
    assert len(port.sent(wire.TimeSync)) == 2
    assert stats["time_sync_unanswered"] == 1


def test_idle_polls_do_not_write_to_the_store(store: Store) -> None:
    poller, stats = make_poller(store)
    idle = [wire.Data(ADDR, (), next_seq=44, base_time=T0)]
    port = ScriptedPort(station({HELLO_DATA: [hello(), *idle], WANT_DATA: idle}))
    poller.poll(framed(port, stats), ADDR)
    wal = Path(store.path + "-wal")
    before = store.database.total_changes, wal.stat().st_size, wal.stat().st_mtime_ns
    for _ in range(20):
        assert poller.poll(framed(port, stats), ADDR) is False
    assert (store.database.total_changes, wal.stat().st_size, wal.stat().st_mtime_ns) == before
    assert stats["polls"] == 21 and stats["timeouts"] == 0


def two_station_port(bad_clock: int) -> ScriptedPort:
    """Station 7 (SAN-01) answers normally; station 8 (BAD-1) says HELLO with ``bad_clock``."""
    # (A clock the store could not hold is refused by the codec now: out_of_range.)
    good = station({HELLO_DATA: [hello(), data(*STAGE)], WANT_DATA: []})

    def respond(frame: wire.Frame) -> list[wire.Frame]:
        if frame.addr == ADDR + 1 and isinstance(frame, wire.Poll):
            return [wire.Hello(ADDR + 1, "BAD-1", "1.0.0", 0, 1, 1, 5, bad_clock),
                    wire.Data(ADDR + 1, (Reading(5, 1, T0, 1, 0),))]
        return good(frame) if frame.addr == ADDR else []
    return respond


def unwritable_hello_of(store: Store, station_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store cannot record that station's HELLO (an entry it cannot write), every time."""
    real = store.record_hello

    def record_hello(hello: wire.Hello) -> Any:
        if hello.station_id == station_id:
            raise StoreError(f"station {station_id}: its facts cannot be stored")
        return real(hello)
    monkeypatch.setattr(store, "record_hello", record_hello)


def test_a_station_failing_at_every_poll_does_not_stop_its_link_mates(
        store: Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    unwritable_hello_of(store, "BAD-1", monkeypatch)
    port = ScriptedPort(two_station_port(T0))
    link = SerialLink(LinkConfig("p", stations=(ADDR + 1, ADDR), poll_interval_s=0.01,
                                 reply_timeout_s=0.05),
                      store, REGISTRY, time_sync=False, open_port=lambda config: port)
    started = link.heartbeat
    link.start()
    try:
        deadline = time.monotonic() + 10
        while link.stats()["station_errors"].get("StoreError", 0) < 3:
            assert time.monotonic() < deadline, link.stats()
            time.sleep(0.01)
    finally:
        link.stop()
    assert len(store.unsent(10)) == 4  # the station polled after the failing one
    assert "internal_errors" not in link.stats() and link.heartbeat > started
    logged = [r for r in caplog.records if "BAD-1" in r.getMessage() or "address 8" in
              r.getMessage()]
    assert sum(r.levelname == "ERROR" and "while handling its frames" in r.getMessage()
               for r in logged) == 1  # once, not once per poll


def test_a_link_whose_every_station_fails_stops_beating(store: Store,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    unwritable_hello_of(store, "BAD-1", monkeypatch)
    port = ScriptedPort(two_station_port(T0))
    link = SerialLink(LinkConfig("p", stations=(ADDR + 1,), poll_interval_s=0.01,
                                 reply_timeout_s=0.05),
                      store, REGISTRY, time_sync=False, open_port=lambda config: port)
    link.start()
    try:
        deadline = time.monotonic() + 10
        while link.stats()["station_errors"].get("StoreError", 0) < 2:
            assert time.monotonic() < deadline, link.stats()
            time.sleep(0.01)
        beat = link.heartbeat
        while link.stats()["station_errors"]["StoreError"] < 6:
            assert time.monotonic() < deadline, link.stats()
            time.sleep(0.01)
    finally:
        link.stop()
    assert link.heartbeat == beat  # the watchdog starves: restarting may cure a wedged store


def more(*readings: Reading) -> wire.DataMore:
    return wire.DataMore(ADDR, tuple(readings))


def test_a_reply_of_several_data_frames_is_stored_and_acked_as_one(store: Store) -> None:
    poller, stats = make_poller(store)
    port = ScriptedPort(station({HELLO_DATA: [hello(), more(*STAGE[:1]), more(*STAGE[1:3]),
                                              data(*STAGE[3:])]}))
    assert poller.poll(framed(port, stats), ADDR) is True
    assert port.sent(wire.Ack) == [wire.Ack(ADDR, 45)]  # one ACK for the whole reply
    assert [r.reading.seq for r in store.unsent(10)] == [41, 42, 43, 44]
    assert stats["readings_new"] == 4 and stats["acks"] == 1 and stats["timeouts"] == 0


def test_a_reply_cut_short_keeps_and_acks_what_came(store: Store) -> None:
    # the last DATA of the reply never came (noise on the line): what came is good readings
    poller, stats = make_poller(store, timeout_s=0.05)
    port = ScriptedPort(station({HELLO_DATA: [hello(), more(*STAGE[:2])]}))
    poller.poll(framed(port, stats), ADDR)
    assert [r.reading.seq for r in store.unsent(10)] == [41, 42]
    assert port.sent(wire.Ack) == [wire.Ack(ADDR, 43)]
