"""The wire's primitive fields (docs/contracts.md 1.2): LEB128 varints in their shortest form,
zigzag signed varints, length-prefixed UTF-8 strings; writers, and a ``Reader`` that checks
each field as it reads it."""

from __future__ import annotations

from .constants import MAX_UVARINT
from .errors import Malformed, OutOfRange

_MAX_UVARINT_BYTES = 8  # 56 bits: a longer shortest-form varint exceeds MAX_UVARINT


def put_uvarint(out: bytearray, n: int, limit: int = MAX_UVARINT) -> None:
    if not 0 <= n <= limit:
        raise ValueError(f"value out of range for its field: {n} not in [0, {limit}]")
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def put_svarint(out: bytearray, n: int) -> None:
    put_uvarint(out, (n << 1) if n >= 0 else ((-n << 1) - 1))


def put_string(out: bytearray, s: str) -> None:
    raw = s.encode()
    put_uvarint(out, len(raw))
    out += raw


class Reader:
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
