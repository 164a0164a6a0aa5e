"""A virtual serial cable: two raw ptys bridged by a relay thread.

The station firmware (MicroPython unix port) opens `station_path` with ``open(path, 'r+b')``
and the gateway opens `gateway_path` with ``serial.Serial(path, 9600, timeout=...)``; bytes
written at one end come out of the other, unchanged unless a filter says otherwise.

    station process ── pty A slave │ pty A master ─┐
                                                  relay thread (filters, counters)
    gateway process ── pty B slave │ pty B master ─┘

Host (CPython, Linux) only.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
import termios
import threading
from collections.abc import Callable
from types import TracebackType

from .waker import Waker

# Transforms one chunk of bytes on its way across the link; return b"" to drop it.
# Called on the relay thread, once per chunk as read (chunk boundaries are arbitrary).
ByteFilter = Callable[[bytes], bytes]

_READ_SIZE = 4096
_JOIN_TIMEOUT = 5.0


def make_raw(fd: int) -> None:
    """Put a tty in raw mode, as cfmakeraw(3): 8-bit clean, no echo, no CR/LF mapping,
    no line editing, no signal characters, no XON/XOFF flow control; and a read returns what
    has arrived, at once (VMIN 0: the firmware's hal_unix.Uart takes a frame in one read after
    poll says bytes are there; pyserial sets its own)."""
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(fd)
    iflag &= ~(
        termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
        | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON | termios.IXOFF
    )
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    cc[termios.VMIN] = 0
    cc[termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])


class RawPty:
    """A pty pair with a raw slave. `path` names the slave device for an endpoint to open.

    The slave fd is kept open here even though nobody reads it: while any slave fd is open
    the tty stays up, so the master never gets EIO and bytes written to the master wait in
    the tty until an endpoint opens `path` and reads them.
    """

    def __init__(self) -> None:
        self.master_fd, self.slave_fd = os.openpty()  # both non-inheritable
        self.path = os.ttyname(self.slave_fd)
        make_raw(self.slave_fd)

    def close(self) -> None:
        for fd in (self.master_fd, self.slave_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class _Lane:
    """One direction of the link: bytes waiting to be written into the receiving pty's master."""

    def __init__(self, dest_fd: int, byte_filter: ByteFilter | None, held: bool) -> None:
        self.dest_fd = dest_fd
        self.byte_filter = byte_filter
        self.held = held  # True: keep bytes here, the receiving end would discard them
        self.pending = bytearray()
        self.delivered = 0


class VirtualSerialLink:
    """Two raw ptys joined by a relay thread; see the module docstring.

    `to_gateway` / `to_station` filter the bytes travelling each way (see ByteFilter).
    A simulator that delays bytes can drop them in a filter and hand them back later
    with `deliver_to_gateway` / `deliver_to_station`.

    Bytes sent before the other end is open are not lost:
    - towards the station they wait in the tty, and MicroPython's open() keeps them;
    - towards the gateway they wait in the relay, because pyserial's Serial.open() flushes
      the tty's input queue (tcflush TCIFLUSH) as its last step. The relay sees that flush
      (pty packet mode) and only then starts delivering. So open the gateway end with
      pyserial, or pass ``hold_until_gateway_opens=False`` for an opener that doesn't flush.
      Bytes sent after the gateway closed its port are discarded when pyserial reopens it,
      as on a real port.
    """

    def __init__(
        self,
        to_gateway: ByteFilter | None = None,
        to_station: ByteFilter | None = None,
        *,
        hold_until_gateway_opens: bool = True,
    ) -> None:
        self._station = RawPty()
        self._gateway = RawPty()
        for pty in (self._station, self._gateway):
            os.set_blocking(pty.master_fd, False)
            # Packet mode: every master read starts with a status byte, non-zero when the
            # endpoint flushed its queues. That is how the relay learns pyserial opened.
            fcntl.ioctl(pty.master_fd, termios.TIOCPKT, struct.pack("i", 1))
        self._to_gateway = _Lane(self._gateway.master_fd, to_gateway, held=hold_until_gateway_opens)
        self._to_station = _Lane(self._station.master_fd, to_station, held=False)
        # Which lane the bytes read from each master go into.
        self._lane_from = {
            self._station.master_fd: self._to_gateway,
            self._gateway.master_fd: self._to_station,
        }
        self._lock = threading.Lock()  # guards lane.pending against deliver_to_*()
        self._waker = Waker()
        self._stopping = False
        self._closed = False
        self.error: BaseException | None = None  # what stopped the relay, if it failed
        self._thread = threading.Thread(target=self._run, name="virtual-serial-link", daemon=True)
        self._thread.start()

    @property
    def station_path(self) -> str:
        return self._station.path

    @property
    def gateway_path(self) -> str:
        return self._gateway.path

    @property
    def bytes_to_gateway(self) -> int:
        """Bytes written into the gateway end so far (after filtering)."""
        return self._to_gateway.delivered

    @property
    def bytes_to_station(self) -> int:
        """Bytes written into the station end so far (after filtering)."""
        return self._to_station.delivered

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def deliver_to_gateway(self, data: bytes) -> None:
        """Queue bytes for the gateway end, bypassing the filter. Safe from any thread."""
        self._enqueue(self._to_gateway, data)

    def deliver_to_station(self, data: bytes) -> None:
        """Queue bytes for the station end, bypassing the filter. Safe from any thread."""
        self._enqueue(self._to_station, data)

    def close(self) -> None:
        """Stop the relay and close the ptys. Raises if the relay had failed (e.g. a filter raised)."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._waker.wake()
        self._thread.join(_JOIN_TIMEOUT)
        for pty in (self._station, self._gateway):
            pty.close()
        self._waker.close()
        if self.error is not None:
            raise RuntimeError("serial link relay failed") from self.error

    def __enter__(self) -> VirtualSerialLink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- relay thread -------------------------------------------------------------------

    def _enqueue(self, lane: _Lane, data: bytes) -> None:
        with self._lock:
            lane.pending += data
        self._waker.wake()

    def _run(self) -> None:
        try:
            self._relay()
        except BaseException as exc:  # kept for close() to re-raise in the caller's thread
            self.error = exc

    def _relay(self) -> None:
        poller = select.poll()
        poller.register(self._waker.fileno(), select.POLLIN)
        lanes = (self._to_gateway, self._to_station)
        while not self._stopping:
            # Each master is the source of one lane and the destination of the other.
            for lane in lanes:
                waiting_for_room = bool(lane.pending) and not lane.held
                poller.register(lane.dest_fd, select.POLLIN | (select.POLLOUT if waiting_for_room else 0))
            for fd, _events in poller.poll():
                if fd == self._waker.fileno():
                    self._waker.drain()
                else:
                    self._read_master(fd)
            for lane in lanes:
                self._write_pending(lane)

    def _read_master(self, fd: int) -> None:
        try:
            packet = os.read(fd, _READ_SIZE + 1)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:  # no slave fd open; cannot happen while ours is
                return
            raise
        if not packet:
            return
        status, payload = packet[0], packet[1:]
        if status == 0:  # TIOCPKT_DATA: the endpoint wrote these bytes
            lane = self._lane_from[fd]
            if lane.byte_filter is not None:
                payload = lane.byte_filter(payload)
            if payload:
                self._enqueue(lane, payload)
        elif status & termios.TIOCPKT_FLUSHREAD and fd == self._gateway.master_fd:
            self._to_gateway.held = False  # pyserial has finished opening the port

    def _write_pending(self, lane: _Lane) -> None:
        if lane.held:
            return
        with self._lock:
            if not lane.pending:
                return
            try:
                written = os.write(lane.dest_fd, lane.pending)
            except BlockingIOError:
                return  # the endpoint is not reading; POLLOUT tells us when there is room
            del lane.pending[:written]
            lane.delivered += written
