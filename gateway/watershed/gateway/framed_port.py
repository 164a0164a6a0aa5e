"""Frames over a serial port: encode and write, read and decode, with byte and defect counts.

The port is anything with pyserial's interface (``write``, ``flush``, ``read``, ``in_waiting``)
opened with a short read timeout, so a test can hand in ``serial.serial_for_url("loop://")``.
A simulated port may also say when no station will send anything before the gateway writes
again (``nothing_coming()``, watershed_sim's): a reply it says will not come is not waited for.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Collection
from typing import Protocol

from watershed.contracts import wire

log = logging.getLogger(__name__)

# Defects of a frame that arrived intact (CRC good): a station's firmware at fault, not noise.
_FIRMWARE_KINDS = (wire.UnsupportedVersion.kind, wire.UnknownFrameType.kind, wire.OutOfRange.kind)

# Frame types a station sends; anything else on the line is an echo or another gateway.
STATION_FRAME_TYPES = frozenset({wire.HELLO, wire.DATA, wire.DATA_MORE, wire.STATUS, wire.RESULT})


class SerialPort(Protocol):
    def write(self, data: bytes) -> int | None: ...
    def flush(self) -> None: ...
    def read(self, size: int = 1) -> bytes: ...
    @property
    def in_waiting(self) -> int: ...
    def close(self) -> None: ...


class FramedPort:
    """Sends frames and collects a station's reply frames until they are complete or time is up.

    ``stats`` is shared with the link: bytes_in, bytes_out, frames_sent, plus one counter per
    late or stray frame. Decoder defects are counted per kind in ``decoder.errors``.
    """

    def __init__(self, port: SerialPort, decoder: wire.FrameDecoder, stats: Counter[str],
                 wake_preamble: int = 0) -> None:
        self.port = port
        self.decoder = decoder
        self.stats = stats
        # The leading delimiter ends any noise the station's decoder has collected; more of
        # them (idle fill, contracts 1.1) give a station asleep on its RX line time to wake.
        self._lead = wire.DELIMITER * (1 + wake_preamble)
        self._nothing_coming: Callable[[], bool] | None = getattr(port, "nothing_coming", None)

    def send(self, frame: wire.Frame) -> None:
        data = self._lead + wire.encode_frame(frame)
        self.port.write(data)
        self.port.flush()
        self.stats["bytes_out"] += len(data)
        self.stats["frames_sent"] += 1

    def discard_stale(self) -> None:
        """Drop what arrived since the last exchange (a late reply), so it is not taken for
        the next one, and end any partial frame the decoder holds."""
        waiting = self.port.in_waiting
        data = self.port.read(waiting) if waiting else b""
        self.stats["bytes_in"] += len(data)
        for item in self.decoder.feed(data + wire.DELIMITER):
            if not isinstance(item, wire.FrameError):
                self.stats["late_frames"] += 1
                log.debug("dropped a late %s from address %d", wire.FRAME_NAMES[item.type],
                          item.addr)

    def collect(self, addr: int, wanted: Collection[int], timeout_s: float
                ) -> tuple[list[wire.Frame], bool]:
        """Frames from station ``addr`` until one of each ``wanted`` type has arrived or
        ``timeout_s`` has passed; returns them and whether every wanted type came. A DATA_MORE
        says the station is still answering (contracts 1.2): the time starts again after each,
        and the DATA that ends its reply is still wanted (``wire.joined`` makes them one)."""
        deadline = time.monotonic() + timeout_s
        frames: list[wire.Frame] = []
        missing = set(wanted)
        quiet_reads = 0
        while missing and time.monotonic() < deadline:
            data = self.port.read(max(1, self.port.in_waiting))
            if not data:
                if self._nothing_coming is not None:
                    # Twice in a row, a read's timeout apart: a margin, as the simulation's
                    # view and this port are looked at a moment apart.
                    quiet_reads = quiet_reads + 1 if self._nothing_coming() else 0
                    if quiet_reads == 2:
                        break
                continue
            quiet_reads = 0
            # The whole chunk is decoded before deciding to stop: a reply's frames may share it.
            for item in self._decode(data, addr):
                frames.append(item)
                missing.discard(item.type)
                if item.type == wire.DATA_MORE:
                    deadline = time.monotonic() + timeout_s
        return frames, not missing

    def waiting(self, addr: int) -> list[wire.Frame]:
        """Frames from station ``addr`` that have arrived already, without waiting: after a
        complete reply, these can only come from a second station answering at ``addr``."""
        frames: list[wire.Frame] = []
        while waiting := self.port.in_waiting:
            frames += self._decode(self.port.read(waiting), addr)
        return frames

    def _decode(self, data: bytes, addr: int) -> list[wire.Frame]:
        """The frames from station ``addr`` in ``data``; the rest counted (and logged)."""
        self.stats["bytes_in"] += len(data)
        frames: list[wire.Frame] = []
        for item in self.decoder.feed(data):
            if isinstance(item, wire.FrameError):
                # Noise is routine and only counted; a frame of another protocol version or
                # type, or with a number beyond its range, means mismatched or faulty firmware,
                # which an operator must hear about.
                level = logging.WARNING if item.kind in _FIRMWARE_KINDS else logging.DEBUG
                log.log(level, "frame rejected (%s) while waiting for address %d: %s",
                        item.kind, addr, item)
            elif item.addr != addr or item.type not in STATION_FRAME_TYPES:
                self.stats["stray_frames"] += 1
            else:
                frames.append(item)
        return frames
