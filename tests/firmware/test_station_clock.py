"""The station's clock (issue 3, item 6; contracts 1.3 TIME and 1.4): readings before the first
TIME are flagged clock_unsynced, a step flags clock_jump, an impossible clock is flagged and
corrected by TIME, and a channel never gives two readings the same time — after a backward step
or a reboot onto an earlier clock it waits until the clock passes its last slot."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import serial

from watershed.contracts import wire
from watershed_sim.clock import SimClock
from watershed.firmware_build import compile_firmware
from watershed_sim.station_process import SimStation

pytestmark = pytest.mark.firmware

T0 = 1763676000  # 2025-11-20, a plausible clock
SPEED = 120  # a 60 s slot every half second of wall time
STAGE = {"no": 1, "pin": 26, "interval_s": 60, "scale_num": 5000, "scale_den": 65535,
         "exponent": -3}
UNSYNCED, JUMP = wire.CLOCK_UNSYNCED, wire.CLOCK_JUMP


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_firmware(tmp_path_factory.mktemp("firmware"))


def make_station(tmp_path: Path, firmware: Path, clock: SimClock) -> SimStation:
    st = SimStation(tmp_path, firmware, clock, station_id="CLK-01", address=7, basin="santiago",
                    channels=[STAGE])
    st.set_adc(26, 20000)
    return st


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class Gateway:
    """Plays the gateway on the station's pty with the gateway's own codec."""

    def __init__(self, port: str) -> None:
        self.port = serial.Serial(port, 9600, timeout=0.1)
        self.decoder = wire.FrameDecoder()

    def send(self, frame: wire.Frame) -> None:
        self.port.write(wire.encode_frame(frame))

    def receive(self, kind: type, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in self.decoder.feed(self.port.read(256)):
                if isinstance(item, kind):
                    return item
        raise AssertionError(f"no {kind.__name__} from the station")

    def close(self) -> None:
        self.port.close()


def times(st: SimStation) -> list[int]:
    return [r[2] for r in st.produced if r[1] == STAGE["no"]]


def test_unsynced_then_a_backward_step_flags_the_jump_and_never_repeats_a_slot(tmp_path,
                                                                            firmware):
    clock = SimClock(sim_epoch=T0, speed=SPEED)
    st = make_station(tmp_path, firmware, clock)
    st.start()
    gw = Gateway(st.gateway_port)
    try:
        wait_for(lambda: len(st.produced) >= 2)
        assert all(r[5] & UNSYNCED for r in st.produced), "readings before TIME are unsynced"

        gw.send(wire.TimeSync(7, int(clock.now() * 1000)))  # a sync without a step
        assert gw.receive(wire.Result).status == wire.RESULT_OK
        synced_from = len(st.produced)
        wait_for(lambda: len(st.produced) >= synced_from + 2)
        after_sync = st.produced[synced_from + 1:]
        assert all(r[5] & (UNSYNCED | JUMP) == 0 for r in after_sync), after_sync

        stepped_from = len(st.produced)
        gw.send(wire.TimeSync(7, int((clock.now() - 300) * 1000)))  # 5 minutes back
        assert gw.receive(wire.Result).status == wire.RESULT_OK
        wait_for(lambda: len(st.produced) >= stepped_from + 3)
        first_after = st.produced[stepped_from]
        assert first_after[5] & JUMP, f"the reading after a step is flagged: {first_after}"
        assert not first_after[5] & UNSYNCED
        ts = times(st)
        assert ts == sorted(set(ts)), f"slots repeat or go back: {ts}"
        assert all(t % 60 == 0 for t in ts)
    finally:
        gw.close()
        st.close()


def test_an_impossible_clock_is_flagged_and_corrected_by_time(tmp_path, firmware):
    clock = SimClock(sim_epoch=1577836800, speed=SPEED)  # 2020: a flat RTC battery
    st = make_station(tmp_path, firmware, clock)
    st.start()
    gw = Gateway(st.gateway_port)
    try:
        wait_for(lambda: len(st.produced) >= 2)
        assert all(r[5] & UNSYNCED for r in st.produced)
        gw.send(wire.Poll(7, wire.WANT_HELLO))
        assert gw.receive(wire.Hello).clock == 0, "an impossible clock is reported as unset"

        fixed_from = len(st.produced)
        gw.send(wire.TimeSync(7, T0 * 1000))
        assert gw.receive(wire.Result).status == wire.RESULT_OK
        wait_for(lambda: len(st.produced) >= fixed_from + 2)
        first = st.produced[fixed_from]
        assert first[2] >= T0 and first[5] & JUMP and not first[5] & UNSYNCED, first
    finally:
        gw.close()
        st.close()


def test_after_a_reboot_onto_an_earlier_clock_slots_still_ascend(tmp_path, firmware):
    st = make_station(tmp_path, firmware, SimClock(sim_epoch=T0, speed=SPEED))
    st.start()
    wait_for(lambda: len(st.produced) >= 3)
    st.stop(kill=True)
    before = times(st)
    st.close()

    again = make_station(tmp_path, firmware, SimClock(sim_epoch=T0 - 120, speed=SPEED))
    again.start()
    try:
        wait_for(lambda: len(again.produced) >= 2)
        assert times(again)[0] > before[-1], (before, times(again))
    finally:
        again.close()
