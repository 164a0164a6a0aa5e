"""Boot-time replay of the outbox's segments (outbox.py's module docstring says what they hold).

Imported once by ``Outbox`` at boot and then dropped from ``sys.modules``, so its code does not
stay in RAM while the station samples.
"""

import os
import struct

from micropython import const

_REC = "<BBBbIIqI"
_PREFIX = "ob"  # outbox.py names its segment files so
_REC_SIZE = const(24)
_READING = const(0xA5)
_HEAD = const(0x5A)
_CUM = const(0xC3)
_RANGE = const(0x3C)
_HOLE = const(0x96)


def load(ob):
    """Replay every segment into ``ob``: next_seq, acknowledgements, losses, last times."""
    numbers = _numbers(ob._dir)
    if numbers:  # a new segment takes a number above all, a dropped unreadable one's too
        ob._next_number = numbers[-1] + 1
    last = 0  # seq of the last good reading, in log order
    holes = []  # [first, end) gaps in the readings
    known = []  # holes already counted at an earlier boot
    fresh_head = False  # start a new segment rather than append to the newest
    tail_lost = 0
    buf = ob._buf
    for i, number in enumerate(numbers):
        newest = i == len(numbers) - 1
        first = end = 0
        bad_run = 0  # bad records since the last good one
        with open(ob._path(number), "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                if n < _REC_SIZE or not ob._valid():
                    bad_run += 1
                    if n < _REC_SIZE:
                        break
                    continue
                bad_run = 0
                kind, channel, _, _, seq, time, mantissa, _ = struct.unpack(_REC, buf)
                if kind == _READING:
                    if last and seq > last + 1:
                        holes.append((last + 1, seq))
                    if seq > last:
                        last = seq
                    if not first:
                        first = seq
                    end = seq + 1
                    if seq >= ob.next_seq:
                        ob.next_seq = seq + 1
                    if time > ob.last_time.get(channel, -1):
                        ob.last_time[channel] = time
                elif kind == _HEAD:
                    if not first:
                        first = end = seq
                    _checkpoint(ob, seq, time, mantissa)
                elif kind == _CUM:
                    if seq > ob.acked_below:
                        ob.acked_below = seq
                elif kind == _RANGE:
                    ob._add_range(seq, time)
                elif kind == _HOLE:
                    known.append((seq, time))
        if newest and bad_run:
            # One bad record at the end is a torn append, never confirmed: nothing lost.
            # More is damage: its readings' seqs are unknown.
            fresh_head = True
            if bad_run > 1:
                tail_lost = bad_run
        if first:
            ob._segs.append([number, first, end])
        else:
            os.remove(ob._path(number))  # nothing readable in it
    lost = 0
    for first, end in holes:
        counted = False
        for h in known:
            if h[0] <= first and end <= h[1]:
                counted = True
        if not counted:
            lost += end - first
            ob._put(_HOLE, 0, 0, 0, first, end, end - first)
    for h in known:
        ob._add_range(h[0], h[1])
    for first, end in holes:
        ob._add_range(first, end)
    if tail_lost:
        # Skip a whole segment's worth of seqs so that none of the lost ones is reused.
        jump_from = ob.next_seq
        ob.next_seq += ob._seg_records
        lost += tail_lost
        ob._put(_HOLE, 0, 0, 0, jump_from, ob.next_seq, tail_lost)
        ob._add_range(jump_from, ob.next_seq)
    ob.lost_corrupt += lost
    if ob._segs and ob.acked_below < ob._segs[0][1]:
        ob.acked_below = ob._segs[0][1]  # below the oldest segment nothing is held
    if ob.acked_below > ob.next_seq:
        ob.acked_below = ob.next_seq
    ob._trim_ranges()
    if not ob._segs or fresh_head:
        ob._open_new_segment()  # keeps the HOLE records waiting in the write buffer
    else:
        last = ob._segs[-1]
        ob._head = open(ob._path(last[0]), "ab")
        ob._head_records = os.stat(ob._path(last[0]))[6] // _REC_SIZE
    if ob._wn:
        ob._put(_HEAD, 0, 0, 0, ob.next_seq, ob.acked_below, ob._counters())
        ob._write_buffer()
    while len(ob._segs) > ob.max_segments:  # a smaller budget, or a ring turning
        ob._account_oldest()
        ob._put(_HEAD, 0, 0, 0, ob.next_seq, ob.acked_below, ob._counters())
        ob._write_buffer()
        ob._remove_oldest()


def _numbers(data_dir):
    """The segment files' numbers, ascending."""
    found = []
    for name in os.listdir(data_dir):
        if name.startswith(_PREFIX) and len(name) == 8:
            try:
                found.append(int(name[2:]))
            except ValueError:
                pass
    found.sort()
    return found


def _checkpoint(ob, seq, acked_below, counters):
    if seq > ob.next_seq:
        ob.next_seq = seq
    if acked_below > ob.acked_below:
        ob.acked_below = acked_below
    lost_o = counters >> 32
    lost_c = counters & 0xFFFFFFFF
    if lost_o > ob.lost_overwritten:
        ob.lost_overwritten = lost_o
    if lost_c > ob.lost_corrupt:
        ob.lost_corrupt = lost_c
