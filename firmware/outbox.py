"""Durable outbox: every reading is in flash before it is offered, and leaves only on ACK.

Layout. A ring of append-only segment files ``<data_dir>/ob<NNNNNN>`` (numbers never reused),
each of at most ``segment_records`` fixed 24-byte records::

    kind:u8 channel:u8 flags:u8 exponent:i8 seq:u32le time:u32le mantissa:i64le crc32:u32le

with a CRC-32 over the first 20 bytes. Kinds:

    READING  a reading (seq, channel, time, mantissa, exponent, flags)
    HEAD     first record of every segment, and a state checkpoint: seq = next_seq,
             time = acked_below, mantissa = lost_overwritten << 32 | lost_corrupt
    CUM      a cumulative ACK: every seq below ``seq`` is acknowledged
    RANGE    a selective ACK of [seq, time)
    HOLE     readings [seq, time) found lost to corruption, ``mantissa`` of them counted, so a
             later boot does not count them again

No record is ever rewritten: a sample appends 24 bytes to the newest segment (flushed, which on
littlefs commits it), an ACK appends one record per new fact. ACK records always follow the
readings they cover, so dropping the oldest segments (a prefix of the log) never brings an
acknowledged reading back.

Boot replays every segment. A record with a bad CRC is skipped (records are fixed-size, so the
rest of the segment still reads); holes in the sequence of readings are lost readings, counted
once in ``lost_corrupt`` and remembered with a HOLE record. Bad records at the end of the newest
segment are a torn append (power cut mid-write: that reading was never confirmed, so nothing is
lost); the station then starts a fresh segment rather than appending after them. If the newest
segment is damaged elsewhere, ``next_seq`` skips ahead by a whole segment so a sequence number
is never reused.

Bounded by ``budget_bytes`` of flash: at most ``budget_bytes // segment_bytes - 1`` segments
(one more exists for a moment while the ring turns). When the newest is full and the ring is
full, the oldest segment is dropped; its unacknowledged readings are counted in
``lost_overwritten``. Acknowledged readings stay until their segment is dropped, for backfill.

Reading back (a poll's reply, a backfill, the console's dump): ``seek(first, end)``, then iterate
the outbox, then ``stop()``.

Cost: appending allocates nothing but the record's flush; reading back allocates each reading's
tuple and nothing that grows with the backlog; RAM holds one index entry per segment and at most
_MAX_RANGES selective-ACK ranges.
"""

import os
import struct
import sys

from wire import crc32

try:
    from micropython import const
except ImportError:  # CPython, for tools
    def const(x):
        return x

_REC = "<BBBbIIqI"
_REC_SIZE = const(24)
_BODY = const(20)
_READING = const(0xA5)
_HEAD = const(0x5A)
_CUM = const(0xC3)
_RANGE = const(0x3C)
_HOLE = const(0x96)
_MAX_RANGES = const(24)  # selective ACK ranges kept in RAM; more only cost resends
_WBUF_RECORDS = const(8)
_PREFIX = "ob"


class Outbox:
    def __init__(self, data_dir, budget_bytes=65536, segment_records=128):
        self._dir = data_dir
        self._seg_records = max(4, segment_records)
        self.max_segments = max(2, budget_bytes // (self._seg_records * _REC_SIZE) - 1)
        self._buf = bytearray(_REC_SIZE)
        self._body = memoryview(self._buf)[:_BODY]
        self._body_rec = memoryview(self._buf)  # a record written apart from the buffer
        self._next_number = 1  # the next segment file's number (set by the boot replay)
        self._wbuf = bytearray(_REC_SIZE * _WBUF_RECORDS)
        self._wview = memoryview(self._wbuf)
        self._wn = 0
        self.next_seq = 1
        self.acked_below = 1  # every seq below is acknowledged (or gone): never offered again
        self.lost_overwritten = 0
        self.lost_corrupt = 0
        self.last_time = {}  # channel -> time of its newest reading in the outbox
        self._ranges = []  # [first, end) not pending above acked_below: ascending, disjoint
        self._segs = []  # [segment number, first seq, end seq] of each segment, oldest first
        self._head = None  # the newest segment, open for appending
        self._head_records = 0
        self._file = None  # reading the log back (seek): the segment open, and
        self._at = [0, 0, 0]  # its number, the first seq wanted, the backfill's end
        self._load()

    # --- files ------------------------------------------------------------------------------

    def _path(self, number):
        return "%s/%s%06d" % (self._dir, _PREFIX, number)

    def _valid(self):
        buf = self._buf
        if buf[0] not in (_READING, _HEAD, _CUM, _RANGE, _HOLE):
            return False
        crc = buf[20] | (buf[21] << 8) | (buf[22] << 16) | (buf[23] << 24)
        return crc32(self._body) == crc

    def _pack(self, view, kind, channel, flags, exponent, seq, time, mantissa):
        """One record, CRC included, into ``view`` (_REC_SIZE bytes)."""
        struct.pack_into(_REC, view, 0, kind, channel, flags, exponent, seq, time, mantissa, 0)
        struct.pack_into("<I", view, _BODY, crc32(view[:_BODY]))

    def _put(self, kind, channel, flags, exponent, seq, time, mantissa):
        """Add one record to the write buffer; _write_buffer writes it in one append."""
        if self._wn == _WBUF_RECORDS:
            self._write_buffer()
        at = self._wn * _REC_SIZE
        self._pack(self._wview[at:at + _REC_SIZE], kind, channel, flags, exponent, seq, time,
                   mantissa)
        self._wn += 1

    # --- boot -------------------------------------------------------------------------------

    def _load(self):
        # Boot-only code lives in its own module, dropped after the replay: RAM is scarce.
        import outbox_boot
        outbox_boot.load(self)
        del sys.modules["outbox_boot"]

    def _counters(self):
        return (self.lost_overwritten << 32) | (self.lost_corrupt & 0xFFFFFFFF)

    def _open_new_segment(self):
        """Start the next segment with a HEAD record (the state checkpoint). Records waiting
        in the write buffer stay there: they follow the HEAD."""
        number = self._next_number  # above every segment on flash, unreadable ones included
        self._next_number = number + 1
        if self._head is not None:
            self._head.close()
        self._head = open(self._path(number), "wb")
        self._segs.append([number, self.next_seq, self.next_seq])
        self._pack(self._body_rec, _HEAD, 0, 0, 0, self.next_seq, self.acked_below,
                   self._counters())
        self._head.write(self._body_rec)
        self._head.flush()
        self._head_records = 1

    def _write_buffer(self):
        """Append the write buffer to the head, turning the ring first if it would not fit."""
        n = self._wn
        if not n:
            return
        if self._head_records + n > self._seg_records:
            self._rotate()
        self._head.write(self._wview[:n * _REC_SIZE])
        self._head.flush()
        self._head_records += n
        self._wn = 0

    def _rotate(self):
        # Checkpointing in the new segment's HEAD record first, then deleting the oldest,
        # means a power cut between the two loses no count: the checkpoint's acked_below
        # already covers the dropped segment, so dropping it again counts nothing.
        drop = len(self._segs) >= self.max_segments
        if drop:
            self._account_oldest()
        self._open_new_segment()
        if drop:
            self._remove_oldest()

    def _account_oldest(self):
        first, end = self._segs[0][1], self._segs[0][2]
        if len(self._segs) > 1:
            end = self._segs[1][1]
        self.lost_overwritten += self._unacked(first, end)
        if end > self.acked_below:
            self.acked_below = end
        self._trim_ranges()

    def _remove_oldest(self):
        number = self._segs.pop(0)[0]
        try:
            os.remove(self._path(number))
        except OSError:
            pass

    # --- acknowledgement state --------------------------------------------------------------

    def _add_range(self, first, end):
        """Merge [first, end) into the ranges; True if it covered anything new."""
        if first < self.acked_below:
            first = self.acked_below
        if end <= first:
            return False
        ranges = self._ranges
        i = 0
        while i < len(ranges) and ranges[i][1] < first:
            i += 1
        if i < len(ranges) and ranges[i][0] <= first and end <= ranges[i][1]:
            return False  # already known
        if i < len(ranges) and ranges[i][0] <= end:
            r = ranges[i]
            if first < r[0]:
                r[0] = first
            if end > r[1]:
                r[1] = end
            while i + 1 < len(ranges) and ranges[i + 1][0] <= r[1]:
                if ranges[i + 1][1] > r[1]:
                    r[1] = ranges[i + 1][1]
                ranges.pop(i + 1)
        else:
            ranges.insert(i, [first, end])
            if len(ranges) > _MAX_RANGES:
                ranges.pop()  # forget the highest: those readings are only sent again
        return True

    def _trim_ranges(self):
        ranges = self._ranges
        while ranges and ranges[0][0] <= self.acked_below:
            if ranges[0][1] > self.acked_below:
                self.acked_below = ranges[0][1]
            ranges.pop(0)

    def _acked(self, seq):
        if seq < self.acked_below:
            return True
        for r in self._ranges:
            if r[0] <= seq < r[1]:
                return True
            if seq < r[0]:
                break
        return False

    def _unacked(self, first, end):
        if first < self.acked_below:
            first = self.acked_below
        if end > self.next_seq:
            end = self.next_seq
        if end <= first:
            return 0
        n = end - first
        for r in self._ranges:
            lo = r[0] if r[0] > first else first
            hi = r[1] if r[1] < end else end
            if hi > lo:
                n -= hi - lo
        return n

    # --- the outbox's API -------------------------------------------------------------------

    def append(self, channel, time, mantissa, exponent, flags):
        """Store one reading; returns its sequence number. Never reused, even across resets."""
        seq = self.next_seq
        self._put(_READING, channel, flags, exponent, seq, time, mantissa)
        self._write_buffer()  # durable before the seq is returned (and so before it is offered)
        self.next_seq = seq + 1
        self._segs[-1][2] = seq + 1
        if time > self.last_time.get(channel, -1):
            self.last_time[channel] = time
        return seq

    def ack(self, cumulative, ranges=()):
        """Apply the gateway's ACK: everything below ``cumulative`` and each [first, end) range.

        What is new is appended to flash before this returns."""
        if cumulative > self.next_seq:
            cumulative = self.next_seq
        if cumulative > self.acked_below:
            self.acked_below = cumulative
            self._put(_CUM, 0, 0, 0, cumulative, 0, 0)
        for first, end in ranges:
            if end > self.next_seq:
                end = self.next_seq
            if self._add_range(first, end):
                self._put(_RANGE, 0, 0, 0, first if first > self.acked_below else
                          self.acked_below, end, 0)
        self._trim_ranges()
        self._write_buffer()

    def seek(self, first=0, end=0):
        """Read the log back from ``first``: iterating the outbox then gives the unacked
        readings, oldest first, or with ``end`` the readings of [first, end) still held, acked
        or not (a backfill). One record at a time, from flash: a poll's reply allocates no list
        and no generator (blocks a fragmented heap may not have), only each reading's tuple.
        ``stop()`` after, or the segment being read stays open."""
        self.stop()
        at = self._at
        at[0] = 0  # no segment read yet
        at[1] = first if end else max(first, self.acked_below)
        at[2] = end

    def stop(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def __iter__(self):
        return self

    def __next__(self):
        at = self._at
        buf = self._buf
        while True:
            if self._file is None:
                for seg in self._segs:
                    if seg[0] > at[0] and seg[2] > at[1]:
                        break
                else:
                    raise StopIteration
                at[0] = seg[0]
                self._file = open(self._path(seg[0]), "rb")
            if self._file.readinto(buf) != _REC_SIZE:
                self.stop()  # the segment's end: on to the next
                continue
            if buf[0] != _READING or not self._valid():
                continue
            r = struct.unpack(_REC, buf)
            seq = r[4]
            if seq < at[1]:
                continue
            if at[2]:
                if seq >= at[2]:
                    at[0] = self._next_number  # past every segment: the end
                    self.stop()
                    raise StopIteration
            elif self._acked(seq):
                continue
            return (seq, r[1], r[5], r[6], r[3], r[2])

    def depth(self):
        """Readings held and not yet acknowledged."""
        return self._unacked(self.oldest_seq(), self.next_seq)

    def oldest_seq(self):
        """The oldest seq still held (acked or not); next_seq when none is."""
        for seg in self._segs:
            if seg[2] > seg[1]:
                return seg[1]
        return self.next_seq

    def segments(self):
        return len(self._segs)

    def close(self):
        self.stop()
        if self._head is not None:
            self._head.close()
            self._head = None
