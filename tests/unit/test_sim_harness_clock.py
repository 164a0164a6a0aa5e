"""The harness's time (hardware/watershed_sim/clock.py HarnessClock) does not move while a
station handles its link's bytes: a TIME it applies a step late would set its clock a step
wrong, and every reading after would carry a wrong time. The station's side of the FIFO
protocol is played here as firmware/hal_unix_harness.py does it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from watershed.contracts import wire
from watershed_sim.clock import HarnessClock

EPOCH = 1_000_000  # s
LINK = "link-1"


class Station:
    """The FIFO ends a station holds (hal_unix_harness.HarnessClock)."""

    def __init__(self, folder: Path) -> None:
        self.ask = os.open(folder / "sleep", os.O_WRONLY)
        self.wake = os.open(folder / "wake", os.O_RDONLY | os.O_NONBLOCK)

    def say(self, line: str) -> None:
        os.write(self.ask, line.encode() + b"\n")

    def woken(self) -> int:
        try:
            return len(os.read(self.wake, 16))
        except BlockingIOError:
            return 0

    def close(self) -> None:
        os.close(self.ask)
        os.close(self.wake)


@pytest.fixture
def harness(tmp_path):
    unread = [0]
    clock = HarnessClock(EPOCH, 100, tmp_path / "clock", step_s=60, quiet_timeout_s=30)
    clock.add_link(LINK, {1: "S"})
    clock.attach("S", tmp_path / "S", unread=lambda: unread[0])
    station = Station(tmp_path / "S")
    master, slave = os.openpty()
    gate = clock.gateway_port(lambda config: open(os.ttyname(slave), "wb", buffering=0))(
        SimpleNamespace(port=LINK))
    clock.start()
    yield clock, station, gate, unread
    clock.stop()
    station.close()
    gate.close()
    os.close(master)
    os.close(slave)


def poll(clock: HarnessClock, gate) -> threading.Thread:
    """The gateway begins a poll cycle (the barrier, where time may move) and polls, on a
    thread of its own."""
    def cycle() -> None:
        clock.before_cycle(LINK)
        gate.write(wire.encode_frame(wire.Poll(1, 1)))
    thread = threading.Thread(target=cycle, daemon=True)
    thread.start()
    return thread


def wake_at(clock: HarnessClock, station: Station, answers: int) -> float:
    """The time at which the harness had answered ``answers`` requests of the station."""
    woken = 0
    deadline = time.monotonic() + 5
    while woken < answers and time.monotonic() < deadline:
        woken += station.woken()
        time.sleep(0.01)
    assert woken == answers
    return clock.now()


def settle() -> None:
    time.sleep(0.3)


def test_time_waits_while_a_station_woken_by_its_link_is_awake(harness) -> None:
    clock, station, gate, _ = harness
    station.say(str((EPOCH + 30) * 1000))  # booted: asleep until +30 s
    settle()
    poll(clock, gate).join(5)  # its first poll: time does not move before a station is polled
    station.say("w")  # the next POLL's bytes woke it: it handles them
    moving = poll(clock, gate)
    settle()
    assert clock.now() == EPOCH and moving.is_alive()  # held for it
    station.say(str((EPOCH + 30) * 1000))  # asleep again
    assert wake_at(clock, station, 2) == EPOCH + 30  # its old request answered, then this one
    station.say(str((EPOCH + 600) * 1000))
    moving.join(5)
    assert not moving.is_alive() and clock.now() == EPOCH + 60  # a whole step


def test_time_waits_while_bytes_wait_unread_in_a_stations_port(harness) -> None:
    clock, station, gate, unread = harness
    station.say(str((EPOCH + 30) * 1000))
    settle()
    poll(clock, gate).join(5)
    unread[0] = 5  # delivered, not yet read: the station has not woken to them
    moving = poll(clock, gate)
    settle()
    assert clock.now() == EPOCH and moving.is_alive()
    unread[0] = 0
    assert wake_at(clock, station, 1) == EPOCH + 30
    station.say(str((EPOCH + 600) * 1000))
    moving.join(5)
    assert not moving.is_alive() and clock.now() == EPOCH + 60


def test_the_links_clock_moves_a_poll_interval_a_step_then_with_the_wall_once_released(
        harness) -> None:
    """The gateway's links pace their cycles by the barrier while the harness drives time
    (before_cycle is True) and run their schedules on ``link_monotonic``: a step of 60
    simulated seconds at speed 100 is their poll interval of 0.6 s, however long it took."""
    clock, station, gate, _ = harness
    station.say(str((EPOCH + 600) * 1000))
    settle()
    start = clock.link_monotonic()
    assert clock.before_cycle(LINK) is True  # not polled yet: time stays
    gate.write(wire.encode_frame(wire.Poll(1, 1)))
    assert clock.link_monotonic() == start
    assert clock.before_cycle(LINK) is True
    assert clock.now() == EPOCH + 60 and clock.link_monotonic() == pytest.approx(start + 0.6)
    settle()
    assert clock.link_monotonic() == pytest.approx(start + 0.6)  # the wall does not move it
    clock.release()
    assert clock.before_cycle(LINK) is False  # the link keeps its own pace again
    released = clock.link_monotonic()
    settle()
    assert clock.link_monotonic() - released >= 0.25 and clock.now() == EPOCH + 60


def test_a_link_is_quiet_while_its_stations_sleep_with_nothing_unread(harness) -> None:
    """The gateway waits for no reply when the harness says none can come
    (framed_port.FramedPort.collect): every station on the link asleep, none with bytes
    unread."""
    clock, station, _, unread = harness
    assert not clock.link_quiet(LINK)  # booting
    station.say(str((EPOCH + 30) * 1000))
    settle()
    assert clock.link_quiet(LINK)
    unread[0] = 3  # a POLL delivered, not read yet: it will wake and may answer
    assert not clock.link_quiet(LINK)
    unread[0] = 0
    station.say("w")  # reading them
    settle()
    assert not clock.link_quiet(LINK)
    station.say(str((EPOCH + 30) * 1000))
    settle()
    assert clock.link_quiet(LINK) and not clock.link_quiet("another link")


def test_time_stops_at_the_runs_end_and_the_links_clock_goes_on_with_the_wall(harness) -> None:
    """At the run's end (stop_at) time stays put, however fast the gateway cycles, and the
    links keep their own pace there: their clock moves with the wall, so their commits go on
    while the run drains."""
    clock, station, gate, _ = harness
    station.say(str((EPOCH + 600) * 1000))
    settle()
    clock.stop_at(EPOCH + 90)
    clock.before_cycle(LINK)
    gate.write(wire.encode_frame(wire.Poll(1, 1)))
    assert clock.before_cycle(LINK) is True and clock.now() == EPOCH + 60
    assert clock.before_cycle(LINK) is False and clock.now() == EPOCH + 90
    at_end = clock.link_monotonic()
    settle()
    assert clock.before_cycle(LINK) is False and clock.now() == EPOCH + 90
    assert clock.link_monotonic() - at_end >= 0.25
