"""Station <-> gateway wire protocol, version 1 (docs/contracts.md, section 1).

A frame on the byte stream is ``COBS(header + payload + crc32) + b"\\x00"``. The zero byte only
ever appears as a delimiter, so a receiver resynchronises at the next zero after noise or a
truncated frame. The firmware has its own codec (firmware/wire.py); both must pass
tests/vectors/wire_v1.json.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterator, Union

from cobs import cobs

from .ids import is_valid_id

PROTOCOL_VERSION = 1
MAX_BODY = 250  # header + payload + CRC; COBS adds 1 byte, the delimiter 1: 252 on the wire
DELIMITER = b"\x00"
GATEWAY_ADDRESS = 0
BROADCAST_ADDRESS = 255

# Frame types. Stations send 0x0_, the gateway sends 0x1_.
HELLO = 0x01
DATA = 0x02
STATUS = 0x03
RESULT = 0x04
POLL = 0x10
ACK = 0x11
TIME = 0x12
CONFIG = 0x13
COMMAND = 0x14

# Reading quality flags (a bit set).
MISSING = 0x01  # no value: sensor error or no response
OUT_OF_RANGE = 0x02
SUSPECT = 0x04
CLOCK_UNSYNCED = 0x08  # taken before the station's first TIME sync
SPIKE = 0x10
FLATLINE = 0x20
CLOCK_JUMP = 0x40  # taken around a detected clock step
EVENT = 0x80  # taken in event (flood) mode; not a quality defect


# POLL "want" bits.
WANT_DATA = 0x01
WANT_STATUS = 0x02
WANT_HELLO = 0x04

# Reset causes in HELLO.
RESET_CAUSES = ("unknown", "power_on", "hard", "watchdog", "deepsleep", "soft", "brownout")

# RESULT status codes.
RESULT_OK = 0
RESULT_BAD_REQUEST = 1
RESULT_REJECTED = 2
RESULT_BUSY = 3

# COMMAND codes.
CMD_REBOOT = 1
CMD_SAMPLE_NOW = 2

# Field ranges (contracts 1.2, 1.4). Every number must fit the gateway's SQLite store (int64),
# JSON readers that hold numbers as float64 and InfluxDB.
MAX_UVARINT = (1 << 53) - 1  # any uvarint unless its field says less: exact in a float64
MAX_SEQ = MAX_UVARINT
MAX_TIME = (1 << 33) - 1  # Unix seconds: year 2242, inside InfluxDB's range (up to 2262)
MAX_UNIX_MS = (MAX_TIME + 1) * 1000 - 1  # TIME's milliseconds
_MAX_UVARINT_BYTES = 8  # 56 bits: a longer shortest-form varint exceeds MAX_UVARINT
# A value is mantissa * 10**exponent with at most 15 significant digits, what a float64 keeps
# exactly (DBL_DIG); with |exponent| <= 20 every value is a normal float64 far from its limits.
MAX_EXPONENT = 20
MAX_MANTISSA = 10**15 - 1


class FrameError(ValueError):
    """A frame that cannot be accepted; ``kind`` names the counter it is tallied under."""

    kind = "malformed"


class CrcError(FrameError):
    """The CRC does not match: noise or truncation on the link."""

    kind = "crc"


class CobsError(FrameError):
    """The bytes between two delimiters are not valid COBS."""

    kind = "cobs"


class TooLong(FrameError):
    """More bytes than MAX_BODY allows arrived without a delimiter."""

    kind = "too_long"


class UnsupportedVersion(FrameError):
    """A frame of a protocol version this decoder does not speak."""

    kind = "version"


class UnknownFrameType(FrameError):
    """A frame type this decoder does not know."""

    kind = "unknown_type"


class Malformed(FrameError):
    """A payload that does not follow its type's layout."""

    kind = "malformed"


class OutOfRange(FrameError):
    """A well-formed field whose value lies outside its contract range (1.2, 1.4)."""

    kind = "out_of_range"


# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample: an exact decimal ``mantissa * 10**exponent`` at a UTC second, with flags."""

    seq: int
    channel: int
    time: int  # Unix seconds, UTC
    mantissa: int
    exponent: int
    flags: int = 0

    @property
    def missing(self) -> bool:
        return bool(self.flags & MISSING)

    @property
    def value(self) -> Decimal | None:
        if self.missing:
            return None
        return Decimal(self.mantissa).scaleb(self.exponent)

    @classmethod
    def from_text(cls, seq: int, channel: int, time: int, text: str, flags: int = 0) -> "Reading":
        """Build from a sensor's decimal text such as SDI-12 ``+1.234``: exact, never a float."""
        mantissa, exponent = decimal_parts(text)
        return cls(seq, channel, time, mantissa, exponent, flags)

    @classmethod
    def missing_reading(cls, seq: int, channel: int, time: int, flags: int = 0) -> "Reading":
        return cls(seq, channel, time, 0, 0, flags | MISSING)


_DECIMAL_TEXT = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?", re.ASCII)


def decimal_parts(text: str) -> tuple[int, int]:
    """``"+1.234"`` -> ``(1234, -3)``; exact, keeps trailing zeros (``"1.50"`` -> ``(150, -2)``).

    Sign, ASCII digits and at most one point, like an SDI-12 value; anything else (spaces,
    exponents, ``nan``) raises ValueError, as the firmware's parse_decimal does."""
    m = _DECIMAL_TEXT.fullmatch(text)
    if not m or not (m.group(2) or m.group(3)):
        raise ValueError(f"not a decimal: {text!r}")
    sign, whole, fraction = m.group(1), m.group(2), m.group(3) or ""
    mantissa = int(whole + fraction)
    return (-mantissa if sign == "-" else mantissa), -len(fraction)


def decimal_tuple(value: Decimal) -> tuple[int, int]:
    """The exact ``(mantissa, exponent)`` of a finite Decimal (``Decimal("1.5E+3")`` -> ``(15, 2)``)."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"not a finite decimal: {value!r}")
    mantissa = int("".join(map(str, digits)) or "0")
    return (-mantissa if sign else mantissa), exponent


def value_text(mantissa: int, exponent: int) -> str:
    """Exact JSON number text of ``mantissa * 10**exponent`` (contracts 2): plain decimal for an
    exponent <= 0, trailing zeros kept (``1234,-3`` -> ``1.234``, ``150,-2`` -> ``1.50``); a plain
    integer for a positive exponent while it has at most 15 digits (``15,2`` -> ``1500``, ``0,2``
    -> ``0``), else exponent notation (``1,16`` -> ``1E+16``): a reader taking a longer integer
    would find more digits than the contract allows."""
    digits = str(abs(mantissa))
    sign = "-" if mantissa < 0 else ""
    if exponent > 0:
        if not mantissa:
            return "0"
        if len(digits) + exponent > _MAX_INTEGER_DIGITS:
            return f"{sign}{digits}E+{exponent}"
        return sign + digits + "0" * exponent
    if not exponent:
        return sign + digits
    digits = digits.rjust(-exponent + 1, "0")
    return f"{sign}{digits[:exponent]}.{digits[exponent:]}"


_MAX_INTEGER_DIGITS = len(str(MAX_MANTISSA))


# --- frames -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    addr: int
    station_id: str
    firmware: str
    config_hash: int
    reset_cause: int
    boot_count: int
    next_seq: int  # the sequence number the station will give its next reading
    clock: int  # station's clock, Unix seconds; 0 when it has never been set
    type = HELLO


@dataclass(frozen=True, slots=True)
class Data:
    addr: int
    readings: tuple[Reading, ...]
    next_seq: int = 0  # only for an empty DATA ("nothing to send"): the station's next seq
    base_time: int = 0  # only for an empty DATA: the station's clock
    type = DATA


@dataclass(frozen=True, slots=True)
class Status:
    addr: int
    uptime_s: int
    clock: int
    state: int  # bit set: STATE_*
    battery_mv: int
    outbox_depth: int  # readings not yet acknowledged
    oldest_seq: int  # oldest reading still held in flash
    next_seq: int
    lost_overwritten: int  # readings overwritten because flash was full (total since install)
    lost_corrupt: int  # readings lost to corrupt flash segments (total)
    sensor_errors: int
    free_heap: int
    type = STATUS


STATE_CLOCK_SYNCED = 0x01
STATE_EVENT_MODE = 0x02
STATE_CONFIG_ERROR = 0x04


@dataclass(frozen=True, slots=True)
class Result:
    addr: int
    ref_type: int  # the frame type this answers (CONFIG, COMMAND, TIME)
    status: int  # RESULT_*
    detail: str = ""
    type = RESULT


@dataclass(frozen=True, slots=True)
class Poll:
    addr: int
    want: int = WANT_DATA
    max_readings: int = 0  # 0: as many as fit one frame
    backfill: tuple[int, int] | None = None  # [first, end) sequence range to resend
    type = POLL


@dataclass(frozen=True, slots=True)
class Ack:
    addr: int
    cumulative: int  # every seq below this is durable at the gateway
    ranges: tuple[tuple[int, int], ...] = ()  # further [first, end) ranges that are durable
    type = ACK


@dataclass(frozen=True, slots=True)
class TimeSync:
    addr: int
    unix_ms: int
    type = TIME


@dataclass(frozen=True, slots=True)
class ConfigChunk:
    addr: int
    config_hash: int  # CRC-32 of the whole config blob
    total_len: int
    offset: int
    chunk: bytes
    type = CONFIG


@dataclass(frozen=True, slots=True)
class Command:
    addr: int
    code: int
    args: bytes = b""
    type = COMMAND


Frame = Union[Hello, Data, Status, Result, Poll, Ack, TimeSync, ConfigChunk, Command]

FRAME_NAMES = {
    HELLO: "HELLO", DATA: "DATA", STATUS: "STATUS", RESULT: "RESULT", POLL: "POLL",
    ACK: "ACK", TIME: "TIME", CONFIG: "CONFIG", COMMAND: "COMMAND",
}


# --- primitive encoders -------------------------------------------------------------------


def _uvarint(out: bytearray, n: int, limit: int = MAX_UVARINT) -> None:
    if not 0 <= n <= limit:
        raise ValueError(f"value out of range for its field: {n} not in [0, {limit}]")
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _svarint(out: bytearray, n: int) -> None:
    _uvarint(out, (n << 1) if n >= 0 else ((-n << 1) - 1))


def _string(out: bytearray, s: str) -> None:
    raw = s.encode()
    _uvarint(out, len(raw))
    out += raw


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos

    def more(self) -> bool:
        return self.pos < len(self.buf)

    def u8(self) -> int:
        if self.pos >= len(self.buf):
            raise Malformed("payload ends early")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def i8(self) -> int:
        b = self.u8()
        return b - 256 if b > 127 else b

    def u32le(self) -> int:
        if self.pos + 4 > len(self.buf):
            raise Malformed("payload ends early")
        v = int.from_bytes(self.buf[self.pos:self.pos + 4], "little")
        self.pos += 4
        return v

    def uvarint(self, limit: int = MAX_UVARINT) -> int:
        n = shift = 0
        while True:
            b = self.u8()
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                if shift and not b:
                    raise Malformed("varint not in its shortest form")
                if n > limit:
                    raise OutOfRange(f"{n} exceeds its field's maximum {limit}")
                return n
            shift += 7
            if shift >= 7 * _MAX_UVARINT_BYTES:
                raise OutOfRange(f"varint longer than {_MAX_UVARINT_BYTES} bytes")

    def svarint(self) -> int:
        z = self.uvarint()
        return (z >> 1) if not z & 1 else -((z + 1) >> 1)

    def string(self, limit: int) -> str:
        n = self.uvarint()
        if n > limit or self.pos + n > len(self.buf):
            raise Malformed("string too long or truncated")
        raw = self.buf[self.pos:self.pos + n]
        self.pos += n
        try:
            return raw.decode()
        except UnicodeDecodeError as e:
            raise Malformed("string is not UTF-8") from e

    def rest(self) -> bytes:
        raw = self.buf[self.pos:]
        self.pos = len(self.buf)
        return bytes(raw)


# --- payloads -----------------------------------------------------------------------------


def _check_reading(r: Reading) -> None:
    if not 0 <= r.seq <= MAX_SEQ:
        raise ValueError(f"seq out of range: {r.seq}")
    if not 0 <= r.time <= MAX_TIME:
        raise ValueError(f"time out of range: {r.time}")
    if not 0 <= r.channel <= 255:
        raise ValueError(f"channel out of range: {r.channel}")
    if not 0 <= r.flags <= 255:
        raise ValueError(f"flags out of range: {r.flags}")
    if r.missing and (r.mantissa or r.exponent):
        raise ValueError("a missing reading carries no value")
    if abs(r.mantissa) > MAX_MANTISSA or abs(r.exponent) > MAX_EXPONENT:
        raise ValueError(f"value out of range: {r.mantissa}e{r.exponent}")


def _encode_payload(f: Frame) -> bytes:
    out = bytearray()
    if isinstance(f, Data):
        if not f.readings:
            _uvarint(out, f.next_seq)
            _uvarint(out, f.base_time, MAX_TIME)
            return bytes(out)
        first = f.readings[0]
        _uvarint(out, first.seq)
        _uvarint(out, first.time)
        prev_seq, prev_time = first.seq - 1, first.time
        for r in f.readings:
            _check_reading(r)
            if r.seq <= prev_seq:
                raise ValueError("readings in a DATA frame must have increasing seq")
            _uvarint(out, r.seq - prev_seq - 1)
            out.append(r.channel)
            _svarint(out, r.time - prev_time)
            out.append(r.flags)
            out.append(r.exponent & 0xFF)
            _svarint(out, r.mantissa)
            prev_seq, prev_time = r.seq, r.time
    elif isinstance(f, Hello):
        _string(out, f.station_id)
        _string(out, f.firmware)
        out += f.config_hash.to_bytes(4, "little")
        out.append(f.reset_cause)
        _uvarint(out, f.boot_count)
        _uvarint(out, f.next_seq)
        _uvarint(out, f.clock, MAX_TIME)
    elif isinstance(f, Status):
        _uvarint(out, f.uptime_s)
        _uvarint(out, f.clock, MAX_TIME)
        for n in (f.state, f.battery_mv, f.outbox_depth, f.oldest_seq, f.next_seq,
                  f.lost_overwritten, f.lost_corrupt, f.sensor_errors, f.free_heap):
            _uvarint(out, n)
    elif isinstance(f, Result):
        out.append(f.ref_type)
        out.append(f.status)
        _string(out, f.detail)
    elif isinstance(f, Poll):
        out.append(f.want)
        out.append(f.max_readings)
        if f.backfill is not None:
            _uvarint(out, f.backfill[0])
            _uvarint(out, f.backfill[1])
    elif isinstance(f, Ack):
        _uvarint(out, f.cumulative)
        prev_end = f.cumulative
        for start, stop in f.ranges:
            if start <= prev_end or stop <= start:
                raise ValueError("ACK ranges must ascend and not touch each other or cumulative")
            if stop > MAX_UVARINT:
                raise ValueError(f"ACK range end out of range: {stop}")
            _uvarint(out, start - prev_end)
            _uvarint(out, stop - start)
            prev_end = stop
    elif isinstance(f, TimeSync):
        _uvarint(out, f.unix_ms, MAX_UNIX_MS)
    elif isinstance(f, ConfigChunk):
        out += f.config_hash.to_bytes(4, "little")
        _uvarint(out, f.total_len)
        _uvarint(out, f.offset)
        out += f.chunk
    elif isinstance(f, Command):
        out.append(f.code)
        out += f.args
    else:
        raise TypeError(f"not a frame: {f!r}")
    return bytes(out)


def _decode_payload(ftype: int, addr: int, p: _Reader) -> Frame:
    if ftype == DATA:
        base_seq = p.uvarint()
        base_time = p.uvarint(MAX_TIME)
        readings = []
        prev_seq, prev_time = base_seq - 1, base_time
        while p.more():
            seq = prev_seq + 1 + p.uvarint()
            channel = p.u8()
            time = prev_time + p.svarint()
            flags = p.u8()
            exponent = p.i8()
            mantissa = p.svarint()
            if flags & MISSING and (mantissa or exponent):
                raise Malformed("missing reading with a value")
            if seq > MAX_SEQ:
                raise OutOfRange(f"seq {seq} exceeds {MAX_SEQ}")
            if not 0 <= time <= MAX_TIME:
                raise OutOfRange(f"time {time} outside [0, {MAX_TIME}]")
            if abs(exponent) > MAX_EXPONENT or abs(mantissa) > MAX_MANTISSA:
                raise OutOfRange(f"value {mantissa}e{exponent} outside the contract's range")
            readings.append(Reading(seq, channel, time, mantissa, exponent, flags))
            prev_seq, prev_time = seq, time
        if not readings:
            return Data(addr, (), next_seq=base_seq, base_time=base_time)
        return Data(addr, tuple(readings))
    if ftype == HELLO:
        station_id = p.string(32)
        if not is_valid_id(station_id):
            raise Malformed(f"invalid station id {station_id!r}")
        return Hello(addr, station_id, p.string(32), p.u32le(), p.u8(), p.uvarint(), p.uvarint(),
                     p.uvarint(MAX_TIME))
    if ftype == STATUS:
        uptime_s, clock = p.uvarint(), p.uvarint(MAX_TIME)
        return Status(addr, uptime_s, clock, *(p.uvarint() for _ in range(9)))
    if ftype == RESULT:
        return Result(addr, p.u8(), p.u8(), p.string(MAX_BODY))
    if ftype == POLL:
        want, max_readings = p.u8(), p.u8()
        backfill = None
        if p.more():
            first = p.uvarint()
            backfill = (first, p.uvarint())
        return Poll(addr, want, max_readings, backfill)
    if ftype == ACK:
        cumulative = p.uvarint()
        ranges = []
        prev_end = cumulative
        while p.more():
            gap = p.uvarint()
            if gap == 0:
                raise Malformed("ACK ranges must not touch")
            first = prev_end + gap
            length = p.uvarint()
            if length == 0:
                raise Malformed("empty ACK range")
            if first + length > MAX_UVARINT:
                raise OutOfRange(f"ACK range end {first + length} exceeds {MAX_UVARINT}")
            ranges.append((first, first + length))
            prev_end = first + length
        return Ack(addr, cumulative, tuple(ranges))
    if ftype == TIME:
        return TimeSync(addr, p.uvarint(MAX_UNIX_MS))
    if ftype == CONFIG:
        config_hash = p.u32le()
        total_len = p.uvarint()
        offset = p.uvarint()
        chunk = p.rest()
        if offset + len(chunk) > total_len:
            raise Malformed("config chunk beyond its total length")
        return ConfigChunk(addr, config_hash, total_len, offset, chunk)
    if ftype == COMMAND:
        return Command(addr, p.u8(), p.rest())
    raise UnknownFrameType(f"unknown frame type 0x{ftype:02x}")


# Trailing bytes after the known fields are ignored for these types, so a later minor version
# may append fields; for the others the layout runs to the end of the payload.
_EXTENSIBLE = (HELLO, STATUS)


def encode_body(frame: Frame) -> bytes:
    """Header + payload + CRC-32 (little-endian), before COBS."""
    if not 0 <= frame.addr <= 255:
        raise ValueError(f"address out of range: {frame.addr}")
    body = bytes((PROTOCOL_VERSION, frame.type, frame.addr)) + _encode_payload(frame)
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
    payload = _Reader(body[:-4], 3)
    frame = _decode_payload(ftype, addr, payload)
    if payload.more() and ftype not in _EXTENSIBLE:
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


def config_hash(blob: bytes) -> int:
    """The config hash carried in HELLO and CONFIG: CRC-32 of the canonical config bytes."""
    return zlib.crc32(blob)


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
