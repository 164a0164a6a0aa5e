"""Run a simulated device on a raw pty: the firmware opens ``path`` as its serial port.

A device is any object with ``receive(data, now)``, ``pop_due(now) -> bytes`` and
``next_due() -> float | None`` (times in seconds of ``clock``, default ``time.monotonic``), such
as ``SDI12Bus`` or ``RangeSensor``. One thread per device moves the bytes. When the firmware is
not reading and the tty is full, bytes a device sends are dropped and counted (``overruns``), as
a UART's receive FIFO overruns.

Host (CPython, Linux) only.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from ..serial_link import RawPty
from ..waker import Waker

_IDLE_S = 0.2


class Device(Protocol):
    def receive(self, data: bytes, now: float) -> None: ...
    def pop_due(self, now: float) -> bytes: ...
    def next_due(self) -> float | None: ...


class DevicePty:
    def __init__(self, device: Device, clock: Callable[[], float] = time.monotonic) -> None:
        self.device = device
        self.clock = clock
        self.received = bytearray()  # everything the firmware wrote, for tests
        self.sent = bytearray()  # everything the device put on the line
        self.overruns = 0
        self.error: BaseException | None = None
        self._pty = RawPty()
        os.set_blocking(self._pty.master_fd, False)
        self._lock = threading.Lock()  # the device is not thread-safe: tests take it too
        self._waker = Waker()  # ends the loop's wait at close()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="device-pty", daemon=True)
        self._thread.start()

    @property
    def path(self) -> str:
        return self._pty.path

    @property
    def lock(self) -> threading.Lock:
        """Hold it to change the device's state (values, faults) while the firmware runs."""
        return self._lock

    def close(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._waker.wake()
        self._thread.join(5)
        self._pty.close()
        self._waker.close()
        if self.error is not None:
            raise RuntimeError("device pty failed") from self.error

    def __enter__(self) -> DevicePty:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # re-raised by close() in the caller's thread
            self.error = exc

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self._pty.master_fd, select.POLLIN)
        poller.register(self._waker.fileno(), select.POLLIN)
        while not self._stopping:
            with self._lock:
                due = self.device.next_due()
            wait = _IDLE_S if due is None else min(_IDLE_S, max(0.0, due - self.clock()))
            for fd, _ in poller.poll(wait * 1000):
                if fd == self._pty.master_fd:
                    try:
                        data = os.read(fd, 4096)
                    except (BlockingIOError, OSError):
                        continue
                    now = self.clock()
                    with self._lock:
                        self.received += data
                        self.device.receive(data, now)
            with self._lock:
                out = self.device.pop_due(self.clock())
            if out:
                self.sent += out
                try:
                    os.write(self._pty.master_fd, out)
                except BlockingIOError:
                    self.overruns += len(out)
