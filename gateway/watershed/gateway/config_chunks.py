"""A station config sent in CONFIG frames (contracts 1.3): the blob cut into the longest pieces
that fit one frame each, sent in order; the station answers one RESULT after the last."""

from __future__ import annotations

from watershed.contracts import wire

from .framed_port import FramedPort


def send_config(port: FramedPort, addr: int, blob: bytes) -> None:
    """Every chunk of ``blob`` to the station at ``addr``."""
    config_hash = wire.config_hash(blob)
    offset = 0
    while True:
        chunk = fitting_chunk(addr, config_hash, blob, offset)
        port.discard_stale()
        port.send(wire.ConfigChunk(addr, config_hash, len(blob), offset, chunk))
        offset += len(chunk)
        if offset >= len(blob):
            break


def fitting_chunk(addr: int, config_hash: int, blob: bytes, offset: int) -> bytes:
    """The longest piece of ``blob`` from ``offset`` that fits one CONFIG frame."""
    size = min(len(blob) - offset, wire.MAX_BODY)
    while size > 0:
        chunk = blob[offset:offset + size]
        try:
            wire.encode_body(wire.ConfigChunk(addr, config_hash, len(blob), offset, chunk))
            return chunk
        except ValueError:
            size -= 8
    raise ValueError("a CONFIG frame has no room for config bytes")
