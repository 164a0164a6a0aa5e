"""VirtualSerialLink: raw ptys whose bytes cross byte-exact, through filters, in both directions."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import serial

from tests.fixtures.micropython import MicroPythonRunner
from watershed_sim.serial_link import VirtualSerialLink

# The bytes a naive tty would mangle: NUL, LF/CR (translation), XON/XOFF, ^C, 0xFF (8-bit).
AWKWARD = b"\x00\n\r\r\n\x11\x13\x03\x7f\xff"
EVERY_BYTE = bytes(range(256))
TIMEOUT = 2.0


@pytest.fixture
def link() -> Iterator[VirtualSerialLink]:
    with VirtualSerialLink() as link:
        yield link


@contextmanager
def open_station(link: VirtualSerialLink) -> Iterator[int]:
    """Open the station end with the system calls MicroPython's open(path, 'r+b') makes."""
    fd = os.open(link.station_path, os.O_RDWR | os.O_NOCTTY)
    try:
        yield fd
    finally:
        os.close(fd)


def open_gateway(link: VirtualSerialLink) -> serial.Serial:
    return serial.Serial(link.gateway_path, 9600, timeout=TIMEOUT)


def read_exactly(fd: int, size: int, timeout: float = TIMEOUT) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            break
        data += os.read(fd, size - len(data))
    return data


def nothing_to_read(fd: int) -> bool:
    return not select.select([fd], [], [], 0.1)[0]


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_every_byte_value_crosses_both_ways_unchanged(link: VirtualSerialLink) -> None:
    with open_station(link) as station, open_gateway(link) as gateway:
        os.write(station, EVERY_BYTE + AWKWARD)
        assert gateway.read(len(EVERY_BYTE + AWKWARD)) == EVERY_BYTE + AWKWARD

        gateway.write(AWKWARD + EVERY_BYTE)
        assert read_exactly(station, len(AWKWARD + EVERY_BYTE)) == AWKWARD + EVERY_BYTE

        # Raw ttys: nothing echoed back to the writer, nothing extra added.
        assert nothing_to_read(station)
        assert gateway.in_waiting == 0
    assert link.bytes_to_gateway == link.bytes_to_station == len(EVERY_BYTE + AWKWARD)


def test_bytes_sent_before_the_gateway_opens_are_delivered(link: VirtualSerialLink) -> None:
    with open_station(link) as station:
        os.write(station, AWKWARD)
        time.sleep(0.05)  # let the relay take them before pyserial opens (and flushes) its end

        with open_gateway(link) as gateway:
            assert gateway.read(len(AWKWARD)) == AWKWARD


def test_bytes_sent_before_the_station_opens_are_delivered(link: VirtualSerialLink) -> None:
    with open_gateway(link) as gateway:
        gateway.write(AWKWARD)
        assert wait_until(lambda: link.bytes_to_station == len(AWKWARD))

        with open_station(link) as station:
            assert read_exactly(station, len(AWKWARD)) == AWKWARD


def test_large_transfer_is_not_lost_when_the_reader_lags() -> None:
    # More than a tty buffers, written before the station reads: the relay must keep the rest.
    payload = os.urandom(64 * 1024)
    with VirtualSerialLink() as link, open_gateway(link) as gateway:
        gateway.write(payload)
        with open_station(link) as station:
            assert read_exactly(station, len(payload), timeout=5) == payload


def test_filters_see_and_transform_each_direction() -> None:
    seen_by_gateway_filter: list[bytes] = []

    def upper_case_towards_gateway(chunk: bytes) -> bytes:
        seen_by_gateway_filter.append(chunk)
        return chunk.upper()

    def drop_nul_towards_station(chunk: bytes) -> bytes:
        return chunk.replace(b"\x00", b"")

    with VirtualSerialLink(upper_case_towards_gateway, drop_nul_towards_station) as link:
        with open_station(link) as station, open_gateway(link) as gateway:
            os.write(station, b"level=12\n")
            assert gateway.read(9) == b"LEVEL=12\n"

            gateway.write(b"\x00ack\x00")
            assert read_exactly(station, 3) == b"ack"
            assert nothing_to_read(station)

        assert b"".join(seen_by_gateway_filter) == b"level=12\n"
        assert link.bytes_to_gateway == 9
        assert link.bytes_to_station == 3


def test_dropped_bytes_can_be_delivered_later(link: VirtualSerialLink) -> None:
    # What a delaying link simulator does: drop in the filter, deliver from elsewhere.
    with open_station(link) as station, open_gateway(link) as gateway:
        link.deliver_to_gateway(b"late\x00")
        link.deliver_to_station(b"\xffearly")
        assert gateway.read(5) == b"late\x00"
        assert read_exactly(station, 6) == b"\xffearly"


def test_close_stops_the_relay_thread() -> None:
    link = VirtualSerialLink()
    assert link.running

    link.close()

    assert not link.running
    assert not os.path.exists(link.station_path)  # the ptys are gone too
    assert not os.path.exists(link.gateway_path)
    link.close()  # a second close is harmless


def test_a_failing_filter_is_reported_by_close() -> None:
    def broken(chunk: bytes) -> bytes:
        raise ValueError("filter bug")

    link = VirtualSerialLink(to_gateway=broken)
    with open_station(link) as station:
        os.write(station, b"x")
        assert wait_until(lambda: not link.running)

    with pytest.raises(RuntimeError, match="relay failed") as failure:
        link.close()
    assert isinstance(failure.value.__cause__, ValueError)


STATION_FIRMWARE = """
import sys, select
port = open(sys.argv[1], 'r+b')
port.write(bytes(range(256)) + b'\\x00\\n\\r\\xff')
print('sent')
poller = select.poll()
poller.register(port, select.POLLIN)
reply = b''
while len(reply) < int(sys.argv[2]) and poller.poll(2000):
    reply += port.read(1)
print(reply.hex())
"""


@pytest.mark.firmware
def test_micropython_station_talks_to_pyserial_gateway(
    link: VirtualSerialLink, micropython: MicroPythonRunner
) -> None:
    reply = AWKWARD + EVERY_BYTE[::-1]
    station = micropython.start(STATION_FIRMWARE, args=[link.station_path, str(len(reply))])
    assert station.stdout is not None
    # The station writes before the gateway has opened its port: those bytes must wait.
    assert station.stdout.readline() == "sent\n"
    time.sleep(0.05)  # let the relay take them before pyserial opens (and flushes) its end

    with open_gateway(link) as gateway:
        assert gateway.read(260) == EVERY_BYTE + b"\x00\n\r\xff"
        gateway.write(reply)
        out, err = station.communicate(timeout=5)

    assert station.returncode == 0, err
    assert bytes.fromhex(out.strip()) == reply
