"""Several raw ptys joined by one relay thread through a Medium that decides when bytes arrive.

An endpoint (a station's firmware, the gateway) opens ``hub.path(name)``. What it writes is
handed to ``medium.transmit(name, data, now)``; the medium answers later, from ``medium.due(now)``,
with the bytes each endpoint receives and when. That is where a radio adds latency and noise,
and where a shared bus paces bytes at its baud rate and garbles two talkers at once.

The gateway end is held as in VirtualSerialLink: pyserial flushes its input when it opens, so
bytes for it wait in the relay until the relay sees that flush (pty packet mode).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
import termios
import threading
import time
from typing import Any, Protocol, Self

from .serial_link import RawPty
from .waker import Waker

_READ_SIZE = 4096
_JOIN_TIMEOUT_S = 5.0


class Medium(Protocol):
    def transmit(self, source: str, data: bytes, now: float) -> None:
        """``source`` wrote ``data`` at wall time ``now``."""

    def due(self, now: float) -> list[tuple[str, bytes]]:
        """Bytes that have arrived by ``now``, as (destination, bytes), in arrival order."""

    def next_due(self) -> float | None:
        """Wall time of the next arrival, None if nothing is in the air."""


class _Endpoint:
    def __init__(self, name: str, held: bool) -> None:
        self.name = name
        self.pty = RawPty()
        os.set_blocking(self.pty.master_fd, False)
        fcntl.ioctl(self.pty.master_fd, termios.TIOCPKT, struct.pack("i", 1))
        self.held = held
        self.pending = bytearray()
        self.delivered = 0


class PtyHub:
    def __init__(self, names: list[str], medium: Medium, *, hold: tuple[str, ...] = ()) -> None:
        self.medium = medium
        self._endpoints = {name: _Endpoint(name, name in hold) for name in names}
        self._by_fd = {e.pty.master_fd: e for e in self._endpoints.values()}
        self._by_path = {e.pty.path: e for e in self._endpoints.values()}
        self._lock = threading.Lock()  # guards the medium: transmit() comes from the relay only,
        # but tests and fault timelines may read its counters while it runs
        self._waker = Waker()
        self._stopping = False
        self._closed = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pty-hub", daemon=True)
        self._thread.start()

    def path(self, name: str) -> str:
        return self._endpoints[name].pty.path

    def delivered(self, name: str) -> int:
        return self._endpoints[name].delivered

    def busy(self) -> bool:
        """Bytes in the air, waiting for an endpoint that is open, or written by an endpoint
        and not yet taken into the medium."""
        with self._lock:
            return self.medium.next_due() is not None or any(
                e.pending and not e.held or _queued(e.pty.master_fd)
                for e in self._endpoints.values())

    def unread(self, path: str) -> int:
        """Bytes delivered to the endpoint at ``path`` that its opener has not read yet."""
        return _queued(self._by_path[path].pty.slave_fd)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._waker.wake()
        self._thread.join(_JOIN_TIMEOUT_S)
        for e in self._endpoints.values():
            e.pty.close()
        self._waker.close()
        if self.error is not None:
            raise RuntimeError("pty hub relay failed") from self.error

    # --- relay thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._relay()
        except BaseException as exc:  # re-raised by close() in the caller's thread
            self.error = exc

    def _relay(self) -> None:
        poller = select.poll()
        poller.register(self._waker.fileno(), select.POLLIN)
        while not self._stopping:
            for e in self._endpoints.values():
                room = select.POLLOUT if e.pending and not e.held else 0
                poller.register(e.pty.master_fd, select.POLLIN | room)
            with self._lock:
                next_due = self.medium.next_due()
            timeout_ms = -1 if next_due is None else max(0, (next_due - time.time()) * 1000)
            for fd, _ in poller.poll(None if timeout_ms < 0 else int(timeout_ms) + 1):
                if fd == self._waker.fileno():
                    self._waker.drain()
                else:
                    self._read(self._by_fd[fd])
            with self._lock:  # moved under the lock: busy() never misses bytes in between
                for name, data in self.medium.due(time.time()):
                    self._endpoints[name].pending += data
            for e in self._endpoints.values():
                self._write_pending(e)

    def _read(self, e: _Endpoint) -> None:
        # Under the lock from the read to the medium: busy() sees the bytes in the pty or in the
        # medium, never between (a busy() there let time move while the gateway's last frame of
        # a cycle was in this thread's hands; the station woke to it at the next step and
        # sampled before that step's rain tips reached its pin).
        with self._lock:
            try:
                packet = os.read(e.pty.master_fd, _READ_SIZE + 1)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return
                raise
            if not packet:
                return
            status, payload = packet[0], packet[1:]
            if status == 0 and payload:
                self.medium.transmit(e.name, payload, time.time())
            elif status & termios.TIOCPKT_FLUSHREAD:
                e.held = False  # pyserial has finished opening this end

    def _write_pending(self, e: _Endpoint) -> None:
        if e.held or not e.pending:
            return
        try:
            written = os.write(e.pty.master_fd, e.pending)
        except BlockingIOError:
            return
        del e.pending[:written]
        e.delivered += written


def _queued(fd: int) -> int:
    """Bytes waiting to be read from a pty end. Polled first: a write reaches the other end
    a moment later (a kernel worker moves it), and FIONREAD alone would miss it; a poll
    moves it at once."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.poll(0)
    count = fcntl.ioctl(fd, termios.FIONREAD, struct.pack("i", 0))
    return int(struct.unpack("i", count)[0])


GATEWAY = "gateway"  # the gateway's end of a link, by name


class HubLink:
    """What the testbed asks of a link built on a PtyHub (a radio, a bus): the gateway's pty,
    the medium's counts, and closing it."""

    medium: Any  # counts() of what the air or the wire did
    _hub: PtyHub

    @property
    def gateway_path(self) -> str:
        return self._hub.path(GATEWAY)

    @property
    def hub(self) -> PtyHub:
        return self._hub

    def stats(self) -> dict[str, Any]:
        with self._hub._lock:
            return dict(self.medium.counts())

    def close(self) -> None:
        self._hub.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
