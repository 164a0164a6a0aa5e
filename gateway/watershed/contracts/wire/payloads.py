"""Each frame type's payload layout (docs/contracts.md 1.4): a frame to payload bytes and back,
with every field checked against its range."""

from __future__ import annotations

from ..decimals import MAX_EXPONENT, MAX_MANTISSA
from ..ids import is_valid_id
from .constants import (ACK, COMMAND, CONFIG, DATA, DATA_MORE, HELLO, MAX_BODY, MAX_SEQ, MAX_TIME,
                        MAX_UNIX_MS, MAX_UVARINT, MISSING, POLL, RESULT, STATUS, TIME)
from .errors import Malformed, OutOfRange, UnknownFrameType
from .frames import (Ack, Command, ConfigChunk, Data, DataMore, Frame, Hello, Poll, Reading,
                     Result, Status, TimeSync)
from .varint import Reader, put_string, put_svarint, put_uvarint


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


def encode_payload(f: Frame) -> bytes:
    out = bytearray()
    if isinstance(f, Data):
        if not f.readings:
            if isinstance(f, DataMore):
                raise ValueError("a DATA_MORE frame carries readings")
            put_uvarint(out, f.next_seq)
            put_uvarint(out, f.base_time, MAX_TIME)
            return bytes(out)
        first = f.readings[0]
        put_uvarint(out, first.seq)
        put_uvarint(out, first.time)
        prev_seq, prev_time = first.seq - 1, first.time
        for r in f.readings:
            _check_reading(r)
            if r.seq <= prev_seq:
                raise ValueError("readings in a DATA frame must have increasing seq")
            put_uvarint(out, r.seq - prev_seq - 1)
            out.append(r.channel)
            put_svarint(out, r.time - prev_time)
            out.append(r.flags)
            out.append(r.exponent & 0xFF)
            put_svarint(out, r.mantissa)
            prev_seq, prev_time = r.seq, r.time
    elif isinstance(f, Hello):
        put_string(out, f.station_id)
        put_string(out, f.firmware)
        out += f.config_hash.to_bytes(4, "little")
        out.append(f.reset_cause)
        put_uvarint(out, f.boot_count)
        put_uvarint(out, f.next_seq)
        put_uvarint(out, f.clock, MAX_TIME)
    elif isinstance(f, Status):
        put_uvarint(out, f.uptime_s)
        put_uvarint(out, f.clock, MAX_TIME)
        for n in (f.state, f.battery_mv, f.outbox_depth, f.oldest_seq, f.next_seq,
                  f.lost_overwritten, f.lost_corrupt, f.sensor_errors, f.free_heap):
            put_uvarint(out, n)
    elif isinstance(f, Result):
        out.append(f.ref_type)
        out.append(f.status)
        put_string(out, f.detail)
    elif isinstance(f, Poll):
        out.append(f.want)
        out.append(f.max_readings)
        if f.backfill is not None:
            put_uvarint(out, f.backfill[0])
            put_uvarint(out, f.backfill[1])
    elif isinstance(f, Ack):
        put_uvarint(out, f.cumulative)
        prev_end = f.cumulative
        for start, stop in f.ranges:
            if start <= prev_end or stop <= start:
                raise ValueError("ACK ranges must ascend and not touch each other or cumulative")
            if stop > MAX_UVARINT:
                raise ValueError(f"ACK range end out of range: {stop}")
            put_uvarint(out, start - prev_end)
            put_uvarint(out, stop - start)
            prev_end = stop
    elif isinstance(f, TimeSync):
        put_uvarint(out, f.unix_ms, MAX_UNIX_MS)
    elif isinstance(f, ConfigChunk):
        out += f.config_hash.to_bytes(4, "little")
        put_uvarint(out, f.total_len)
        put_uvarint(out, f.offset)
        out += f.chunk
    elif isinstance(f, Command):
        out.append(f.code)
        out += f.args
    else:
        raise TypeError(f"not a frame: {f!r}")
    return bytes(out)


def decode_payload(ftype: int, addr: int, p: Reader) -> Frame:
    if ftype in (DATA, DATA_MORE):
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
        if ftype == DATA_MORE:
            if not readings:
                raise Malformed("DATA_MORE without readings: more of what?")
            return DataMore(addr, tuple(readings))
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
EXTENSIBLE = (HELLO, STATUS)
