# MicroPython driver for tests/firmware/test_outbox_*.py: uses firmware/outbox.py directly.
#
#   outbox_driver_mp.py DIR BUDGET SEGMENT_RECORDS SEED [OPS [APPEND_IN_256]]
#
# Prints the outbox after boot, then does random appends and ACKs forever (or OPS of them),
# saying what it is about to do before doing it and confirming after, so a test that kills
# the process at any instant knows what was surely done and what might have been:
#   S next_seq acked_below oldest_seq depth lost_overwritten lost_corrupt segments
#   H seq channel time mantissa exponent flags pending      (every reading held)
#   G                                                        (boot listing complete)
#   a seq / A seq                                            (append intended / done)
#   k cum [first end]... / K                                 (ack intended / done)
# A reading's content is a function of its seq, so a test can check what comes back.
import random
import sys

from outbox import Outbox

d = sys.argv[1]
budget = int(sys.argv[2])
segrec = int(sys.argv[3])
random.seed(int(sys.argv[4]))
ops = int(sys.argv[5]) if len(sys.argv) > 5 else -1
append_odds = int(sys.argv[6]) if len(sys.argv) > 6 else 150  # appends per 256 operations

o = Outbox(d, budget, segrec)
print("S", o.next_seq, o.acked_below, o.oldest_seq(), o.depth(), o.lost_overwritten,
      o.lost_corrupt, o.segments())
o.seek(o.oldest_seq(), o.next_seq)
for r in o:
    print("H", r[0], r[1], r[2], r[3], r[4], r[5], 0 if o._acked(r[0]) else 1)
print("G")

while ops:
    ops -= 1
    if random.getrandbits(8) < append_odds:
        seq = o.next_seq
        print("a", seq)
        o.append(seq % 5 + 1, 1700000000 + seq * 60, seq * 7 - 1000, -3, seq & 0x7E)
        print("A", seq)
    else:
        lo = o.acked_below
        span = o.next_seq - lo
        cum = lo + (random.getrandbits(8) * span >> 8 if span > 0 else 0)
        ranges = []
        at = cum
        if len(o._ranges) < 16:
            for _ in range(random.getrandbits(2)):
                f = at + 1 + random.getrandbits(2)
                e = f + 1 + random.getrandbits(2)
                if e > o.next_seq:
                    break
                ranges.append((f, e))
                at = e
        line = "k %d" % cum
        for f, e in ranges:
            line += " %d %d" % (f, e)
        print(line)
        o.ack(cum, ranges)
        print("K")
