"""RadioLink and SharedBus over real ptys: pacing at the baud rate, latency, noise, collisions.

Wall-clock figures are only bounded from the side the load cannot push them (a paced link is
never faster than its baud rate); upper bounds are generous.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import serial

from watershed_sim.line_noise import NoiseSettings, Outage
from watershed_sim.pty_hub import GATEWAY, PtyHub
from watershed_sim.radio_link import STATION, RadioLink, RadioMedium, RadioSettings, total
from watershed_sim.shared_bus import SharedBus

TIMEOUT_S = 10.0


@contextmanager
def open_end(path: str) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        yield fd
    finally:
        os.close(fd)


def read_for(fd: int, size: int, timeout: float = TIMEOUT_S) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            break
        data += os.read(fd, size - len(data))
    return data


def quiet_for(fd: int, seconds: float) -> bytes:
    """Whatever arrives within ``seconds`` (for checking that nothing more comes)."""
    data = b""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], remaining)[0]:
            data += os.read(fd, 4096)
    return data


def test_radio_link_is_paced_at_its_baud_rate() -> None:
    payload = os.urandom(960)  # 1 s at 9600 baud, 8N1
    with RadioLink(RadioSettings(baud=9600)) as link, open_end(link.station_path) as station, \
            serial.Serial(link.gateway_path, 9600, timeout=TIMEOUT_S) as gateway:
        started = time.monotonic()
        os.write(station, payload)
        assert gateway.read(len(payload)) == payload
        elapsed = time.monotonic() - started
    assert 0.95 <= elapsed < 5.0


def test_radio_link_pacing_follows_simulated_time() -> None:
    # At speed 100 the same second of airtime takes a hundredth of the wall time.
    payload = os.urandom(9600)  # 10 simulated seconds
    with RadioLink(RadioSettings(baud=9600), speed=100) as link, \
            open_end(link.station_path) as station, \
            serial.Serial(link.gateway_path, 9600, timeout=TIMEOUT_S) as gateway:
        started = time.monotonic()
        os.write(station, payload)
        assert gateway.read(len(payload)) == payload
        assert 0.095 <= time.monotonic() - started < 5.0


def test_radio_latency_delays_every_byte() -> None:
    with RadioLink(RadioSettings(baud=115200, latency_s=0.3)) as link, \
            open_end(link.station_path) as station, \
            serial.Serial(link.gateway_path, 115200, timeout=TIMEOUT_S) as gateway:
        started = time.monotonic()
        gateway.write(b"ping")
        assert read_for(station, 4) == b"ping"
        assert time.monotonic() - started >= 0.3


def test_radio_noise_through_the_ptys_matches_its_settings() -> None:
    payload = bytes(20_000)
    noise = NoiseSettings(ber=1e-3, burst_loss=0.05, mean_burst_bytes=10)
    with RadioLink(RadioSettings(baud=1_000_000, noise=noise), seed=5) as link, \
            open_end(link.station_path) as station, \
            serial.Serial(link.gateway_path, 9600, timeout=1.0) as gateway:
        os.write(station, payload)
        received = b""
        while chunk := gateway.read(4096):
            received += chunk
        counts = link.stats()
    lost = len(payload) - len(received)
    flipped = sum(bin(b).count("1") for b in received)
    assert lost == total(counts, "lost_burst")
    assert lost / len(payload) == pytest.approx(0.05, rel=0.3)
    assert flipped / (8 * len(received)) == pytest.approx(1e-3, rel=0.3)


def test_radio_outage_on_the_simulated_timeline_drops_everything() -> None:
    now = [0.0]
    settings = RadioSettings(baud=115200, noise=NoiseSettings(outages=(Outage(10.0, 20.0),)))
    with RadioLink(settings, clock=lambda: now[0]) as link, \
            open_end(link.station_path) as station, \
            serial.Serial(link.gateway_path, 9600, timeout=0.5) as gateway:
        now[0] = 15.0
        os.write(station, b"lost in the outage")
        assert gateway.read(100) == b""
        now[0] = 20.0
        os.write(station, b"after")
        assert gateway.read(5) == b"after"


def test_bus_carries_the_gateway_to_every_station_and_each_station_to_the_rest() -> None:
    with SharedBus(["a", "b", "c"], baud=115200) as bus, open_end(bus.port_for("a")) as a, \
            open_end(bus.port_for("b")) as b, open_end(bus.port_for("c")) as c, \
            serial.Serial(bus.gateway_path, 115200, timeout=TIMEOUT_S) as gateway:
        gateway.write(b"poll 2")
        for station in (a, b, c):
            assert read_for(station, 6) == b"poll 2"
        os.write(b, b"reply")
        assert gateway.read(5) == b"reply"
        assert read_for(a, 5) == b"reply" and read_for(c, 5) == b"reply"
        assert quiet_for(b, 0.2) == b""  # a transmitter does not hear itself
        assert bus.stats().get("bytes_collided", 0) == 0


def test_two_stations_talking_at_once_garble_both() -> None:
    message = b"0123456789" * 10  # 100 bytes: about 0.1 s on the wires at 9600 baud
    with SharedBus(["a", "b"], baud=9600) as bus, open_end(bus.port_for("a")) as a, \
            open_end(bus.port_for("b")) as b, \
            serial.Serial(bus.gateway_path, 9600, timeout=TIMEOUT_S) as gateway:
        os.write(a, message)
        os.write(b, message)
        heard = gateway.read(2 * len(message))
        assert len(heard) == 2 * len(message)
        collided = bus.stats()["bytes_collided"]
    assert collided > 0
    assert message not in heard
    # Bytes that overlapped in time are garbled for everyone, the rest (if any) is intact.
    assert collided >= len(message)


def test_bus_is_paced_at_its_baud_rate_across_talkers() -> None:
    with SharedBus(["a"], baud=9600) as bus, open_end(bus.port_for("a")) as a, \
            serial.Serial(bus.gateway_path, 9600, timeout=TIMEOUT_S) as gateway:
        started = time.monotonic()
        os.write(a, bytes(480))
        assert len(gateway.read(480)) == 480
        assert 0.47 <= time.monotonic() - started < 5.0


def test_a_frame_on_its_way_from_the_gateway_to_a_station_keeps_the_link_busy() -> None:
    # The harness clock moves time only while no link is busy. A frame the relay has read from
    # the gateway's pty and not yet put in the air must count, or the station gets it a step
    # late. os.read lets go of the interpreter, so a thread asking busy() in a tight loop
    # lands in that gap often: each answer "idle" must find the frame already given.
    hub = PtyHub([STATION, GATEWAY], RadioMedium(RadioSettings(baud=115200), time.time, 1.0, 0))
    idle_before_given = 0
    try:
        with open_end(hub.path(STATION)) as station, open_end(hub.path(GATEWAY)) as gateway:
            for _ in range(200):
                os.write(gateway, b"ACK")
                stuck_after = time.monotonic() + TIMEOUT_S  # a hub that never goes idle fails
                while True:
                    assert time.monotonic() < stuck_after
                    busy = hub.busy()
                    given = hub.unread(hub.path(STATION))
                    if not busy:
                        idle_before_given += given < 3
                        break
                assert read_for(station, 3) == b"ACK"
    finally:
        hub.close()
    assert idle_before_given == 0
