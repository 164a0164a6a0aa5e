"""Frames on the byte stream (docs/contracts.md 1.1): ``COBS(header + payload + crc32) +
b"\\x00"``, one at a time and as a stream split at every delimiter; and readings packed into
the fewest DATA frames that fit."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Iterator

from cobs import cobs

from .constants import DELIMITER, MAX_BODY, PROTOCOL_VERSION
from .errors import CobsError, CrcError, FrameError, Malformed, TooLong, UnsupportedVersion
from .frames import Data, Frame, Reading
from .payloads import EXTENSIBLE, decode_payload, encode_payload
from .varint import Reader


def encode_body(frame: Frame) -> bytes:
    """Header + payload + CRC-32 (little-endian), before COBS."""
    if not 0 <= frame.addr <= 255:
        raise ValueError(f"address out of range: {frame.addr}")
    body = bytes((PROTOCOL_VERSION, frame.type, frame.addr)) + encode_payload(frame)
    body += zlib.crc32(body).to_bytes(4, "little")
    if len(body) > MAX_BODY:
        raise ValueError(f"frame body of {len(body)} bytes exceeds {MAX_BODY}")
    return body


def encode_frame(frame: Frame) -> bytes:
    """The bytes to put on the wire for one frame, delimiter included."""
    return cobs.encode(encode_body(frame)) + DELIMITER


def decode_body(body: bytes) -> Frame:
    """Check CRC and version, then decode; raises a FrameError subclass on any defect."""
    if len(body) < 7:
        raise CrcError(f"frame of {len(body)} bytes is shorter than header + CRC")
    if zlib.crc32(body[:-4]) != int.from_bytes(body[-4:], "little"):
        raise CrcError("CRC mismatch")
    if body[0] != PROTOCOL_VERSION:
        raise UnsupportedVersion(f"protocol version {body[0]} (this side speaks {PROTOCOL_VERSION})")
    ftype, addr = body[1], body[2]
    payload = Reader(body[:-4], 3)
    frame = decode_payload(ftype, addr, payload)
    if payload.more() and ftype not in EXTENSIBLE:
        raise Malformed("trailing bytes after payload")
    return frame


def decode_frame(encoded: bytes) -> Frame:
    """Decode one frame's COBS bytes (without the delimiter)."""
    try:
        body = cobs.decode(encoded)
    except cobs.DecodeError as e:
        raise CobsError(str(e)) from e
    return decode_body(body)


@dataclass
class FrameDecoder:
    """Splits a byte stream into frames, resynchronising at every delimiter.

    ``feed`` yields decoded frames and FrameError instances (never raises for bad input), so the
    caller can count and log each defect; ``errors`` keeps per-kind totals as well.
    """

    max_encoded: int = MAX_BODY + 2
    frames: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    _buf: bytearray = field(default_factory=bytearray)
    _overflow: bool = False

    def feed(self, data: bytes) -> Iterator[Frame | FrameError]:
        start = 0
        while True:
            end = data.find(DELIMITER, start)
            if end < 0:
                self._append(data[start:])
                return
            self._append(data[start:end])
            chunk, overflow = bytes(self._buf), self._overflow
            self._buf.clear()
            self._overflow = False
            start = end + 1
            if overflow:
                yield self._error(TooLong("frame longer than the maximum"))
            elif chunk:  # empty chunks are idle delimiters, not frames
                try:
                    frame = decode_frame(chunk)
                except FrameError as e:
                    yield self._error(e)
                else:
                    self.frames += 1
                    yield frame

    def _append(self, data: bytes) -> None:
        if self._overflow:
            return
        self._buf += data
        if len(self._buf) > self.max_encoded:
            self._buf.clear()
            self._overflow = True  # drop bytes up to the next delimiter

    def _error(self, e: FrameError) -> FrameError:
        self.errors[e.kind] = self.errors.get(e.kind, 0) + 1
        return e


def readings_per_frame(readings: list[Reading], addr: int) -> list[Data]:
    """Pack readings into as few DATA frames as fit MAX_BODY, in order."""
    frames: list[Data] = []
    batch: list[Reading] = []
    for r in readings:
        batch.append(r)
        try:
            encode_body(Data(addr, tuple(batch)))
        except ValueError:
            batch.pop()
            if not batch:
                raise
            frames.append(Data(addr, tuple(batch)))
            batch = [r]
    if batch:
        frames.append(Data(addr, tuple(batch)))
    return frames
