"""systemd's notify protocol (sd_notify(3)) for both services: one datagram to $NOTIFY_SOCKET.

Small enough to write here rather than depend on a library: ``READY=1`` once the gateway runs,
``WATCHDOG=1`` while its loops are healthy, ``RELOADING=1``/``STOPPING=1`` around a reload or a
stop, ``STATUS=…`` for ``systemctl status``. Without $NOTIFY_SOCKET (not under systemd) every
call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # an abstract socket
        self.address = address or None
        self._socket: socket.socket | None = None
        if self.address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram; False if it could not be sent."""
        if self._socket is None or self.address is None:
            return False
        try:
            self._socket.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError as e:
            log.warning("sd_notify to %s failed: %s", self.address, e)
            return False

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval_s() -> float | None:
    """Half of the watchdog timeout systemd set for this process (WatchdogSec), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None
