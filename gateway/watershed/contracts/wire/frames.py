"""The frames of the wire protocol (docs/contracts.md 1.3, 1.4) as values: a ``Reading`` and
one dataclass per frame type, each knowing its type code."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Union

from ..decimals import decimal_parts
from .constants import (ACK, COMMAND, CONFIG, DATA, DATA_MORE, HELLO, MISSING, POLL, RESULT, STATUS,
                        TIME, WANT_DATA)


class FlaggedValue:
    """A reading's value as every contract carries it: ``mantissa * 10**exponent`` exactly, or
    none when its flags say MISSING (a wire ``Reading``, an MQTT ``MessageReading``)."""

    __slots__ = ()
    mantissa: int
    exponent: int
    flags: int

    @property
    def missing(self) -> bool:
        return bool(self.flags & MISSING)

    @property
    def value(self) -> Decimal | None:
        return None if self.missing else Decimal(self.mantissa).scaleb(self.exponent)


@dataclass(frozen=True, slots=True)
class Reading(FlaggedValue):
    """One sample: an exact decimal ``mantissa * 10**exponent`` at a UTC second, with flags."""

    seq: int
    channel: int
    time: int  # Unix seconds, UTC
    mantissa: int
    exponent: int
    flags: int = 0

    @classmethod
    def from_text(cls, seq: int, channel: int, time: int, text: str, flags: int = 0) -> "Reading":
        """Build from a sensor's decimal text such as SDI-12 ``+1.234``: exact, never a float."""
        mantissa, exponent = decimal_parts(text)
        return cls(seq, channel, time, mantissa, exponent, flags)

    @classmethod
    def missing_reading(cls, seq: int, channel: int, time: int, flags: int = 0) -> "Reading":
        return cls(seq, channel, time, 0, 0, flags | MISSING)


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
class DataMore(Data):
    """A DATA frame with another DATA of the same reply after it (DATA_MORE, contracts 1.2).
    Its readings are a DATA's; ``joined`` makes a reply's chain one ``Data``."""

    type = DATA_MORE


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
    HELLO: "HELLO", DATA: "DATA", DATA_MORE: "DATA_MORE", STATUS: "STATUS", RESULT: "RESULT",
    POLL: "POLL", ACK: "ACK", TIME: "TIME", CONFIG: "CONFIG", COMMAND: "COMMAND",
}


def joined(frames: Iterable[Frame]) -> list[Frame]:
    """``frames`` in their order with each reply's DATA_MORE frames and the DATA that ends them
    made one ``Data`` of all their readings. A chain with no DATA of its address at its end (the
    reply was cut short) becomes one ``DataMore``: its readings are good, and more was to come."""
    out: list[Frame] = []
    chain: list[Data] = []
    for frame in frames:
        if chain and not (isinstance(frame, Data) and frame.addr == chain[0].addr):
            out.append(_chained(chain, DataMore))
            chain = []
        if isinstance(frame, DataMore):
            chain.append(frame)
        elif isinstance(frame, Data) and chain:
            chain.append(frame)
            out.append(_chained(chain, Data))
            chain = []
        else:
            out.append(frame)
    if chain:
        out.append(_chained(chain, DataMore))
    return out


def _chained(chain: list[Data], kind: type[Data]) -> Data:
    readings = tuple(r for f in chain for r in f.readings)
    last = chain[-1]
    return kind(last.addr, readings) if readings else kind(last.addr, (), last.next_seq,
                                                             last.base_time)


def config_hash(blob: bytes) -> int:
    """The config hash carried in HELLO and CONFIG: CRC-32 of the canonical config bytes."""
    return zlib.crc32(blob)
