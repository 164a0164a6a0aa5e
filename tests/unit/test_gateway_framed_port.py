"""Frame defects on a real pyserial port (loop://): counted, and mismatches said in the log."""

import logging
import zlib
from collections import Counter

import serial
from cobs import cobs

from watershed.contracts import wire
from watershed.gateway.framed_port import FramedPort


def loop_port() -> FramedPort:
    return FramedPort(serial.serial_for_url("loop://", timeout=0.05), wire.FrameDecoder(),
                      Counter())


def test_noise_is_counted_quietly_and_the_next_frame_still_arrives(caplog) -> None:
    port = loop_port()
    hello = wire.Hello(3, "SAN-01", "0.1.0", 1, 1, 1, 1, 0)
    port.port.write(b"\x13\x37\x00" + wire.encode_frame(hello))
    with caplog.at_level(logging.DEBUG):
        frames, complete = port.collect(3, {wire.HELLO}, timeout_s=1)
    assert complete and frames == [hello]
    assert port.decoder.errors == {"cobs": 1}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_another_protocol_version_or_frame_type_is_logged_as_a_warning(caplog) -> None:
    port = loop_port()
    body = bytearray(wire.encode_body(wire.Hello(3, "SAN-01", "0.1.0", 1, 1, 1, 1, 0)))
    v2 = bytes([2]) + bytes(body[1:-4])
    unknown = bytes([1, 0x7E]) + bytes(body[2:-4])
    for raw in (v2, unknown):
        port.port.write(cobs.encode(raw + zlib.crc32(raw).to_bytes(4, "little")) + b"\x00")
    with caplog.at_level(logging.WARNING):
        frames, complete = port.collect(3, {wire.HELLO}, timeout_s=0.3)
    assert frames == [] and not complete
    assert port.decoder.errors == {"version": 1, "unknown_type": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("version" in m and "protocol version 2" in m for m in warnings), warnings
    assert any("unknown_type" in m and "0x7e" in m for m in warnings), warnings


def test_a_number_beyond_its_range_is_logged_as_a_warning(caplog) -> None:
    port = loop_port()
    # A STATUS whose lost_overwritten is 2**64: a well-formed frame no store could hold.
    fields = [60, 1763676900, 1, 12810, 0, 1, 1, 2**64, 0, 0, 31000]
    payload = bytearray()
    for n in fields:
        while n > 0x7F:
            payload.append((n & 0x7F) | 0x80)
            n >>= 7
        payload.append(n)
    raw = bytes([1, wire.STATUS, 3]) + bytes(payload)
    port.port.write(cobs.encode(raw + zlib.crc32(raw).to_bytes(4, "little")) + b"\x00")
    with caplog.at_level(logging.WARNING):
        frames, complete = port.collect(3, {wire.STATUS}, timeout_s=0.3)
    assert frames == [] and not complete
    assert port.decoder.errors == {"out_of_range": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("out_of_range" in m and "varint longer than 8 bytes" in m for m in warnings), warnings


def test_a_wake_preamble_of_idle_fill_goes_before_every_frame() -> None:
    port = FramedPort(serial.serial_for_url("loop://", timeout=0.05), wire.FrameDecoder(),
                      Counter(), wake_preamble=8)
    poll = wire.Poll(3, wire.WANT_DATA)
    port.send(poll)
    sent = port.port.read(100)
    assert sent == b"\x00" * 9 + wire.encode_frame(poll)  # the usual delimiter, then 8 more
    # a station that lost the first bytes while waking still decodes the frame
    assert list(wire.FrameDecoder().feed(sent[5:])) == [poll]


class SimulatedPort:
    """loop:// with a simulation's word on what is coming (watershed_sim's ports): the reply
    written to it after ``quiet_checks`` answers of ``nothing_coming``."""

    def __init__(self, says: list[bool], reply: bytes = b"") -> None:
        self.loop = serial.serial_for_url("loop://", timeout=0.02)
        self.says = says
        self.asked = 0
        self.reply = reply

    def nothing_coming(self) -> bool:
        self.asked += 1
        if self.asked == len(self.says):
            self.loop.write(self.reply)
        return self.says[min(self.asked, len(self.says)) - 1]

    def __getattr__(self, name: str):
        return getattr(self.loop, name)


def test_a_reply_a_simulated_port_says_is_not_coming_is_not_waited_for() -> None:
    port = SimulatedPort([True, True])
    framed = FramedPort(port, wire.FrameDecoder(), Counter())
    frames, complete = framed.collect(3, {wire.HELLO}, timeout_s=30)
    assert (frames, complete, port.asked) == ([], False, 2)


def test_a_simulated_port_must_say_so_twice_in_a_row() -> None:
    """Once is not enough: bytes just written to a pty take a moment to show."""
    hello = wire.Hello(3, "SAN-01", "0.1.0", 1, 1, 1, 1, 0)
    port = SimulatedPort([False, True, False, True], wire.encode_frame(hello))
    framed = FramedPort(port, wire.FrameDecoder(), Counter())
    frames, complete = framed.collect(3, {wire.HELLO}, timeout_s=30)
    assert (frames, complete) == ([hello], True)
