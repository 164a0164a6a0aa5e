"""Frames as a faulty station would send them: the contract's layout (docs/contracts.md 1.3,
1.4) with no range checks, so a simulated station can put on the line what no codec of ours
writes (a seq past 2^63, a loss counter of 2^64) and the gateway's decoder can be tested
against it. Only what a station sends with numbers in it: HELLO, DATA and STATUS; any other frame goes
through the contract's own encoder."""

from __future__ import annotations

import zlib

from cobs import cobs

from watershed.contracts import wire


_NO_LIMIT = 1 << 256


def _uvarint(out: bytearray, n: int) -> None:
    wire._uvarint(out, n, _NO_LIMIT)  # the contract's LEB128, its range check lifted


def _svarint(out: bytearray, n: int) -> None:
    _uvarint(out, (n << 1) if n >= 0 else ((-n << 1) - 1))


def _payload(frame: wire.Frame) -> bytes:
    out = bytearray()
    if isinstance(frame, wire.Status):
        for n in (frame.uptime_s, frame.clock, frame.state, frame.battery_mv,
                  frame.outbox_depth, frame.oldest_seq, frame.next_seq, frame.lost_overwritten,
                  frame.lost_corrupt, frame.sensor_errors, frame.free_heap):
            _uvarint(out, n)
    elif isinstance(frame, wire.Data) and frame.readings:
        first = frame.readings[0]
        _uvarint(out, first.seq)
        _uvarint(out, first.time)
        prev_seq, prev_time = first.seq - 1, first.time
        for r in frame.readings:
            _uvarint(out, r.seq - prev_seq - 1)
            out += bytes((r.channel,))
            _svarint(out, r.time - prev_time)
            out += bytes((r.flags, r.exponent & 0xFF))
            _svarint(out, r.mantissa)
            prev_seq, prev_time = r.seq, r.time
    elif isinstance(frame, wire.Data):
        _uvarint(out, frame.next_seq)
        _uvarint(out, frame.base_time)
    elif isinstance(frame, wire.Hello):
        for text in (frame.station_id, frame.firmware):
            raw = text.encode()
            _uvarint(out, len(raw))
            out += raw
        out += frame.config_hash.to_bytes(4, "little") + bytes((frame.reset_cause,))
        for n in (frame.boot_count, frame.next_seq, frame.clock):
            _uvarint(out, n)
    else:
        raise TypeError(f"not a frame a station sends unchecked: {type(frame).__name__}")
    return bytes(out)


def unchecked_body_size(frame: wire.Frame) -> int:
    """The bytes of ``frame``'s body (header, payload, CRC), whatever its numbers."""
    return 3 + len(_payload(frame)) + 4


def encode_unchecked(frame: wire.Frame) -> bytes:
    """``frame`` on the wire (COBS, delimiter), whatever its numbers."""
    if not isinstance(frame, (wire.Status, wire.Data, wire.Hello)):
        return wire.encode_frame(frame)
    body = bytes((wire.PROTOCOL_VERSION, frame.type, frame.addr)) + _payload(frame)
    body += zlib.crc32(body).to_bytes(4, "little")
    return cobs.encode(body) + wire.DELIMITER
