"""Stations simulated in CPython with the contract codec, for gateway tests and benchmarks.

A ``PyStation`` behaves as the contract asks of firmware (contracts 1.3-1.5): it answers POLL
with HELLO (also first after every boot), DATA from its oldest unacknowledged readings (up to
MAX_DATA_FRAMES frames, DATA_MORE ... DATA, when the POLL says WANT_MORE) and STATUS; deletes a
reading from its outbox only when an ACK covers it and sends the rest again;
answers a backfill POLL from the readings its flash still holds (``oldest_seq`` and above);
answers TIME, CONFIG (after the last chunk) and COMMAND with RESULT. Cheap enough that the
station side never limits a gateway under test: a DATA frame is built from the outbox's head.

A ``StationBus`` puts stations on the station end of one virtual serial link (an RS-485 bus):
a thread hands each frame to the station at its address and writes the replies. Its ``lock``
is held while a frame is handled; take it to change a station while the bus runs. Two stations
given the same address (a mis-set DIP switch) both answer, one after the other: a pty does not
garble them as a real bus might, which is the harder case for the gateway.
"""

from __future__ import annotations

import itertools
import os
import select
import threading
import time
from collections.abc import Iterable

from watershed.contracts import wire
from watershed.contracts.wire import Reading

from .unchecked_frames import encode_unchecked, unchecked_body_size
from .waker import Waker

T0 = 1763676900  # a station's reading ``seq`` is stamped T0 + 60 * seq
FIRST_FIT = 40  # readings first tried in one DATA frame; shrinks to what fits


class PyStation:
    """One station's state: outbox, sequence numbers, boot count, clock; see the module."""

    def __init__(self, addr: int, station_id: str, clock_skew_s: int = 0) -> None:
        self.addr = addr
        self.station_id = station_id
        self.next_seq = 1
        self.boot_count = 1
        self.just_booted = True  # a station answers its first poll after boot with HELLO
        self.outbox: dict[int, Reading] = {}  # unacknowledged, ascending (seqs only grow)
        self.produced: list[Reading] = []  # every reading taken, acknowledged or not
        self.oldest_seq = 1  # the flash holds produced readings from this seq on
        self.clock_ms: int | None = None  # as the last TIME set it
        self.clock_skew_s = clock_skew_s  # of the clock before any TIME
        self.configs: list[bytes] = []  # complete configs received
        self.commands: list[int] = []  # command codes received
        self._config_parts = bytearray()
        self._fit = FIRST_FIT

    # --- taking readings --------------------------------------------------------------

    def _keep(self, reading: Reading) -> None:
        self.outbox[reading.seq] = reading
        self.produced.append(reading)
        self.next_seq += 1

    def sample(self, texts: list[str | None], channel: int = 1) -> None:
        """One reading per decimal text (None: a missing value)."""
        for text in texts:
            seq, ts = self.next_seq, T0 + 60 * self.next_seq
            self._keep(Reading.missing_reading(seq, channel, ts) if text is None
                       else Reading.from_text(seq, channel, ts, text))

    def take(self, count: int, channel: int = 1, flags: int = 0) -> range:
        """``count`` readings of ``channel``; returns their seqs."""
        first = self.next_seq
        for _ in range(count):
            seq = self.next_seq
            self._keep(Reading(seq, channel, T0 + 60 * seq, 1000 + seq % 900, -3, flags))
        return range(first, self.next_seq)

    def reboot(self) -> None:
        self.boot_count += 1
        self.just_booted = True

    def clock(self) -> int:
        if self.clock_ms is not None:
            return self.clock_ms // 1000
        return int(time.time()) + self.clock_skew_s

    # --- the protocol -----------------------------------------------------------------

    def answer(self, frame: wire.Frame) -> list[wire.Frame]:
        if isinstance(frame, wire.Poll):
            return self._answer_poll(frame)
        if isinstance(frame, wire.Ack):
            for seq in list(itertools.takewhile(lambda s: s < frame.cumulative, self.outbox)):
                del self.outbox[seq]
            for first, end in frame.ranges:
                for seq in range(first, min(end, self.next_seq)):
                    self.outbox.pop(seq, None)
            return []
        if isinstance(frame, wire.TimeSync):
            self.clock_ms = frame.unix_ms
            return [wire.Result(self.addr, wire.TIME, wire.RESULT_OK)]
        if isinstance(frame, wire.ConfigChunk):
            return self._config(frame)
        if isinstance(frame, wire.Command):
            self.commands.append(frame.code)
            if frame.code == wire.CMD_REBOOT:
                self.reboot()
            return [wire.Result(self.addr, wire.COMMAND, wire.RESULT_OK, "rebooting")]
        return []

    def _answer_poll(self, poll: wire.Poll) -> list[wire.Frame]:
        frames = wire.MAX_DATA_FRAMES if poll.want & wire.WANT_MORE else 1
        if poll.backfill is not None:
            first, end = poll.backfill
            return [*self._chain((r for r in self.produced
                                  if first <= r.seq < end and r.seq >= self.oldest_seq), frames)]
        replies: list[wire.Frame] = []
        if poll.want & wire.WANT_HELLO or self.just_booted:
            replies.append(wire.Hello(self.addr, self.station_id, "py-1", 0, 1, self.boot_count,
                                      self.next_seq, self.clock()))
            self.just_booted = False
        if poll.want & wire.WANT_DATA:
            replies += self._chain(self.outbox.values(), frames)
        if poll.want & wire.WANT_STATUS:
            replies.append(wire.Status(self.addr, 60, self.clock(), 1, 12700, len(self.outbox),
                                       self.oldest_seq, self.next_seq, 0, 0, 0, 30000))
        return replies

    def _chain(self, readings: Iterable[Reading], frames: int) -> list[wire.Data]:
        """Up to ``frames`` DATA frames of ``readings`` (ascending): DATA_MORE while more
        follow, a DATA last."""
        ahead = tuple(itertools.islice(readings, frames * self._fit))
        chain: list[wire.Data] = []
        while True:
            frame = self._data(ahead)
            ahead = ahead[len(frame.readings):]
            if not ahead or len(chain) + 1 == frames:
                return chain + [frame]
            chain.append(wire.DataMore(self.addr, frame.readings))

    def _data(self, readings: Iterable[Reading]) -> wire.Data:
        """The first of ``readings`` (ascending) that fit one DATA frame; none: next_seq."""
        head = tuple(itertools.islice(readings, self._fit))
        if not head:
            return wire.Data(self.addr, (), self.next_seq, self.clock())
        while True:
            frame = wire.Data(self.addr, head)
            # By size alone: a faulty station's numbers beyond the contract still go out.
            if unchecked_body_size(frame) <= wire.MAX_BODY:
                return frame
            head = head[:-1]
            self._fit = len(head)

    def _config(self, chunk: wire.ConfigChunk) -> list[wire.Frame]:
        if chunk.offset == 0:
            self._config_parts = bytearray()
        self._config_parts += chunk.chunk
        if len(self._config_parts) < chunk.total_len:
            return []
        blob = bytes(self._config_parts)
        self.configs.append(blob)
        ok = wire.config_hash(blob) == chunk.config_hash
        return [wire.Result(self.addr, wire.CONFIG,
                            wire.RESULT_OK if ok else wire.RESULT_BAD_REQUEST)]


class StationBus:
    """Stations sharing the station end of one serial link; see the module docstring."""

    def __init__(self, path: str, *stations: PyStation) -> None:
        self.members = list(stations)
        self.stations: dict[int, PyStation] = {}  # the first station at each address
        self._at: dict[int, list[PyStation]] = {}  # every station at each address
        for s in stations:
            self.stations.setdefault(s.addr, s)
            self._at.setdefault(s.addr, []).append(s)
        self.lock = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        self._decoder = wire.FrameDecoder()
        self._stop = Waker()
        self._thread = threading.Thread(target=self._run, name="station-bus", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd, self._stop.fileno()], [], [])
            if self._stop.fileno() in ready:
                return
            for frame in self._decoder.feed(os.read(self._fd, 4096)):
                if isinstance(frame, wire.FrameError):
                    continue
                replies = self._replies(frame)
                if replies:
                    os.write(self._fd, b"".join(self._encode(f) for f in replies))

    def _encode(self, frame: wire.Frame) -> bytes:
        """A reply's bytes on the line. A simulated faulty station may answer with numbers beyond
        the contract's ranges, which the codec refuses to write: those go unchecked."""
        try:
            return wire.encode_frame(frame)
        except ValueError:
            return encode_unchecked(frame)

    def _replies(self, frame: wire.Frame) -> list[wire.Frame]:
        """What the stations at ``frame``'s address answer (more than one if they share it),
        written to the line in one go."""
        with self.lock:
            return [reply for station in self._at.get(frame.addr, ())
                    for reply in station.answer(frame)]

    def outbox_empty(self) -> bool:
        with self.lock:
            return all(not s.outbox for s in self.members)

    def close(self) -> None:
        self._stop.wake()
        self._thread.join(5)
        os.close(self._fd)
        self._stop.close()
