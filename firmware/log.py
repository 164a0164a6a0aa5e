"""Console log: ``E <message>`` lines printed, and the last few kept for the technician's ``log``."""

from micropython import const

_KEEP = const(8)
ring = []  # type: list[str]  # the newest E lines, oldest first


def e(*args):
    line = "E " + " ".join([str(a) for a in args])
    print(line)
    if len(ring) >= _KEEP:
        ring.pop(0)
    ring.append(line)
