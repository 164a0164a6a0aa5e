"""Whether this machine's clock may be trusted, as the operating system says.

A Pi has no real-time clock: booted without NTP it starts from the last saved time, hours or
months off. Pushing that to the stations would stamp every reading wrong with no flag, so TIME
goes out only while the kernel says the clock is synchronised (poller.py), the health and
``watershed gateway status`` show it, and an alarm is raised while it is not (alarms.py).

``system`` (the default) asks the kernel with adjtimex(2) in read-only mode, as
``timedatectl``'s NTPSynchronized does: the clock is synchronised unless adjtimex returns
TIME_ERROR (set while no NTP client -- systemd-timesyncd, chrony, ntpd -- disciplines it).
``assume-synchronised`` trusts the clock (a lab, a test bench, a clock disciplined by
something the kernel does not know of). Tests set any probe they like (``ClockSync(probe)``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

SYSTEM = "system"
ASSUME_SYNCHRONISED = "assume-synchronised"
SOURCES = (SYSTEM, ASSUME_SYNCHRONISED)

TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised
_TIMEX_BYTES = 512  # struct timex is 208 bytes on 64-bit Linux; modes (first field) = 0: read only

Probe = Callable[[], "bool | None"]  # True/False, or None when it cannot be told


@functools.cache
def _adjtimex() -> Callable[[Any], int] | None:
    """libc's adjtimex, looked up once (find_library runs ldconfig: far too slow per call)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None


def kernel_clock_synchronised() -> bool | None:
    """adjtimex(2) with no modes set: True unless the kernel says TIME_ERROR; None if the call
    is not available (not Linux) or fails."""
    adjtimex = _adjtimex()
    if adjtimex is None:
        return None
    timex = ctypes.create_string_buffer(_TIMEX_BYTES)  # zeroed: modes = 0 changes nothing
    state = adjtimex(timex)
    if state < 0:
        return None
    return state != TIME_ERROR


def probe_for(source: str) -> Probe:
    if source == ASSUME_SYNCHRONISED:
        return lambda: True
    if source == SYSTEM:
        return kernel_clock_synchronised
    raise ValueError(f"unknown time source {source!r}: expected one of {', '.join(SOURCES)}")


class ClockSync:
    """The answer of a probe, logged when it changes; unknown counts as not synchronised."""

    def __init__(self, probe: Probe = kernel_clock_synchronised, source: str = SYSTEM) -> None:
        self._probe = probe
        self.source = source
        self._lock = threading.Lock()
        self._last: bool | None = None

    @classmethod
    def of(cls, source: str) -> ClockSync:
        return cls(probe_for(source), source)

    def synchronised(self) -> bool:
        """Ask now (cheap: one system call)."""
        try:
            answer = self._probe()
        except Exception as e:  # a probe that fails says "do not trust the clock", loudly
            log.error("cannot tell whether the clock is synchronised (%s): treated as not", e)
            answer = None
        synced = bool(answer)
        with self._lock:
            changed, self._last = synced != self._last, synced
        if changed:
            if synced:
                log.info("this machine's clock is synchronised (%s): stations get TIME",
                         self.source)
            else:
                log.warning("this machine's clock is not synchronised (%s%s): no TIME is sent"
                            " to stations until it is", self.source,
                            "; the OS cannot tell" if answer is None else "")
        return synced
