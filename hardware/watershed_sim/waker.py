"""Wakes a thread waiting in ``select``/``poll`` from another thread: the self-pipe trick.

Every simulator thread that relays bytes (links, the pty hub, device ptys, the virtual board,
the harness clock's FIFO reader) waits on its file descriptors and this one; ``wake()`` from any
thread ends the wait, ``drain()`` on the waiting thread empties the pipe.
"""

from __future__ import annotations

import os


class Waker:
    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def fileno(self) -> int:
        """The descriptor to wait on (readable once woken)."""
        return self._read

    def wake(self) -> None:
        try:
            os.write(self._write, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: the waiter is woken already
        except OSError:
            pass  # closed: nobody waits any more

    def drain(self) -> None:
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        for fd in (self._read, self._write):
            try:
                os.close(fd)
            except OSError:
                pass
