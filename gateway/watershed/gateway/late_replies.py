"""A reply that came after the reply window, told from a second station at the address.

A station busy with a slow sensor (an SDI-12 retry, a late radar) answers a POLL after the
gateway stopped waiting; the gateway polls again, and the station, which read that POLL
meanwhile, answers it right after the first: two replies from one address, back to back. They
are one station's when their HELLOs name one id and every DATA but the newest is the start of
the newest: no ACK came between them, so the station sent what it had again, and perhaps more
it took meanwhile. Two stations at one address differ there (other seqs, or other content at
one seq), and that stays a shared address (address_disputes.py).

A reply of several DATA frames (contracts 1.2) may be caught only in part when the next is
read: the newest then ends before the earlier does (``wire.DataMore``, cut short), and is one
station's if it is the start of the earlier."""

from __future__ import annotations

from collections.abc import Sequence

from watershed.contracts import wire


def one_station(hellos: Sequence[wire.Hello], datas: Sequence[wire.Data]) -> bool:
    """Whether these frames, answers at one address in the order they came, can all be one
    station's (see the module docstring)."""
    if len({h.station_id for h in hellos}) > 1:
        return False
    if not datas:
        return True
    newest = datas[-1]
    return all(_agree(earlier, newest) for earlier in datas[:-1])


def fullest(datas: Sequence[wire.Data]) -> wire.Data:
    """Of one station's replies, the one that holds what all did: the newest of the longest."""
    return max(reversed(datas), key=lambda d: len(d.readings))


def _agree(earlier: wire.Data, newest: wire.Data) -> bool:
    if isinstance(newest, wire.DataMore) and _start_of(newest, earlier):
        return True  # the newest was cut short in the middle of its frames
    return _start_of(earlier, newest)


def _start_of(earlier: wire.Data, newest: wire.Data) -> bool:
    if not earlier.readings:  # it had nothing then: the newest starts at its next seq
        first = newest.readings[0].seq if newest.readings else newest.next_seq
        return first == earlier.next_seq
    return newest.readings[:len(earlier.readings)] == earlier.readings
