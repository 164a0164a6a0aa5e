"""The unix board's clock when the test harness drives time (hal_unix.py's docstring says how:
the ``now`` file, the ``sleep`` and ``wake`` FIFOs). Imported only by a board configured with
``harness``, so other stations do not carry it in their heap."""

import select

import hal_unix


class HarnessClock(hal_unix.Clock):
    """Station clock in Unix milliseconds on the harness's time (module docstring); settable
    like an RTC (an offset from the harness's time). ``ticks_ms`` is the CPU tick counter on
    the same time, so StationClock.check sees no step the harness did not make. A Clock (the
    same methods), so the board's ``clock`` has one type; its own state, not the base's."""

    def __init__(self, folder, speed):
        self.speed = speed
        self._now_path = folder + "/now"
        self._offset = 0
        self._ask = open(folder + "/sleep", "wb")  # the harness holds the read end open
        self._wake = open(folder + "/wake", "rb")
        self._poller = select.poll()
        self._poller.register(self._wake, select.POLLIN)
        self._owed = 0  # sleep requests the harness has not answered yet
        self._one = bytearray(1)
        self._ms = None  # the harness's time as last read: it moves only while we sleep

    def harness_ms(self):
        if self._ms is None:
            with open(self._now_path) as f:
                self._ms = int(f.read(16))
        return self._ms

    def now_ms(self):
        return self.harness_ms() + self._offset

    def now(self):
        return self.now_ms() // 1000

    def set_ms(self, unix_ms):
        self._offset = unix_ms - self.harness_ms()

    def wait_ms(self, station_ms):
        return station_ms // self.speed

    def ticks_ms(self):
        return (self.harness_ms() // self.speed) & 0x3FFFFFFF

    def sleep(self, station_ms, link=None):
        """Ask the harness to wake this station ``station_ms`` from now; True if bytes on
        ``link`` came first (they end the sleep, as the RX line wakes a board)."""
        if link is not None and link.waiting(0):
            return True  # still awake: the harness counts us awake until the next request
        self._ask.write(b"%d\n" % (self.harness_ms() + station_ms))
        self._owed += 1
        if link is not None:
            self._poller.register(link._port, select.POLLIN)
        try:
            while self._owed:
                if hal_unix._edge_sources:
                    hal_unix._run_irqs()
                for obj, _ in self._poller.poll(1000):
                    if obj is self._wake or obj == self._wake.fileno():
                        self._wake.readinto(self._one)
                        self._owed -= 1
                    elif self._owed:
                        # Awake before reading them: time must not move while it handles them
                        # (a TIME applied a step late would set its clock a step wrong).
                        self._ask.write(b"w\n")
                        return True
        finally:
            self._ms = None  # time may have moved: read it again
            if link is not None:
                self._poller.unregister(link._port)
            if hal_unix._edge_sources:
                hal_unix._run_irqs()
        return False
