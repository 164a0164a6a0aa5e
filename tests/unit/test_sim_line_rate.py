"""No simulated link passes bytes faster than its baud rate, in either direction, from the gateway
or from any station (issue 13: serial goodput is measured against the line's capacity).

The media are driven with chosen instants (no wall clock): by any time t after a talker starts,
a listener has at most floor(t / byte_time) of its bytes, however the talker splits its writes;
then through the ptys, the gateway-to-station direction takes at least its airtime.
"""

from __future__ import annotations

import math
import os
import time

import pytest
import serial

from watershed_sim.airtime import BITS_PER_BYTE, byte_time_s
from watershed_sim.line_noise import NoiseSettings
from watershed_sim.pty_hub import GATEWAY
from watershed_sim.radio_link import STATION, RadioMedium, RadioSettings
from watershed_sim.shared_bus import BusMedium, SharedBus

from tests.unit.test_sim_links import TIMEOUT_S, open_end, read_for

BAUD = 9600
MESSAGE = bytes(range(1, 121))  # 120 bytes: 0.125 s at 9600 baud
CHUNKS = (MESSAGE[:1], MESSAGE[1:50], MESSAGE[50:])  # written faster than the line takes them


def heard_over_time(medium: BusMedium | RadioMedium, source: str, listener: str,
                    byte_time: float) -> list[tuple[float, int]]:
    """(instant, bytes ``listener`` has of ``source``'s MESSAGE) at every half byte time."""
    for chunk in CHUNKS:
        medium.transmit(source, chunk, 0.0)  # all at once: the talker's UART must queue them
    heard, seen = [], 0
    for step in range(2 * len(MESSAGE) + 4):
        now = step * byte_time / 2
        seen += sum(len(data) for dest, data in medium.due(now) if dest == listener)
        heard.append((now, seen))
    return heard


def assert_paced(heard: list[tuple[float, int]], byte_time: float) -> None:
    for now, seen in heard:
        assert seen <= math.floor(now / byte_time + 1e-9), f"{seen} bytes by {now:.6f} s"
    assert heard[-1][1] == len(MESSAGE)  # and all of them, in the end


@pytest.mark.parametrize("source", [GATEWAY, "a", "b"])
def test_bus_passes_no_talker_faster_than_its_baud(source: str) -> None:
    byte_time = byte_time_s(BAUD)
    for listener in {GATEWAY, "a", "b"} - {source}:
        medium = BusMedium([GATEWAY, "a", "b"], BAUD, NoiseSettings(), lambda: 0.0, 1.0, 0)
        assert_paced(heard_over_time(medium, source, listener, byte_time), byte_time)


@pytest.mark.parametrize(("source", "listener"), [(GATEWAY, STATION), (STATION, GATEWAY)])
def test_radio_passes_neither_direction_faster_than_its_baud(source: str, listener: str) -> None:
    byte_time = byte_time_s(BAUD)
    medium = RadioMedium(RadioSettings(BAUD), lambda: 0.0, 1.0, 0)
    assert_paced(heard_over_time(medium, source, listener, byte_time), byte_time)


def test_at_speed_the_line_is_paced_in_simulated_time() -> None:
    # At speed 50 a wall second is 50 simulated ones: still 960 bytes a simulated second.
    speed = 50.0
    wall_byte_time = byte_time_s(BAUD, speed)
    assert wall_byte_time * speed == pytest.approx(BITS_PER_BYTE / BAUD)
    medium = BusMedium([GATEWAY, "a"], BAUD, NoiseSettings(), lambda: 0.0, speed, 0)
    assert_paced(heard_over_time(medium, GATEWAY, "a", wall_byte_time), wall_byte_time)


def test_a_talker_writing_again_later_waits_for_its_own_bytes_to_leave() -> None:
    byte_time = byte_time_s(BAUD)
    medium = BusMedium([GATEWAY, "a"], BAUD, NoiseSettings(), lambda: 0.0, 1.0, 0)
    medium.transmit("a", bytes(10), 0.0)
    medium.transmit("a", bytes(10), 5 * byte_time)  # while its first write is on the wires
    assert sum(len(d) for _, d in medium.due(20 * byte_time - 1e-9)) == 19
    assert sum(len(d) for _, d in medium.due(20 * byte_time)) == 1


def test_gateway_to_stations_through_the_ptys_takes_its_airtime() -> None:
    payload = os.urandom(480)  # 0.5 s at 9600 baud
    with SharedBus(["a", "b"], baud=BAUD) as bus, open_end(bus.port_for("a")) as a, \
            open_end(bus.port_for("b")) as b, \
            serial.Serial(bus.gateway_path, BAUD, timeout=TIMEOUT_S) as gateway:
        started = time.monotonic()
        gateway.write(payload)
        assert read_for(a, len(payload)) == payload
        assert read_for(b, len(payload)) == payload
        elapsed = time.monotonic() - started
    assert elapsed >= len(payload) * byte_time_s(BAUD) * (1 - 1e-6)
