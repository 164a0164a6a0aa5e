"""Unix/HIL board: the firmware under the MicroPython unix port, driven by a test harness.

What cannot exist on a PC sits here, at the lowest level, and nowhere above it:
- serial ports are pty paths (the harness's VirtualSerialLink);
- ADC inputs are files ``<io_dir>/adc<pin>`` holding a raw 16-bit count, written by the harness;
- the clock runs ``speed`` times faster than wall time from ``sim_epoch`` (Unix seconds), so a
  harness runs hours of station time in minutes; the gateway is given the same clock;
- flash is a directory (``data_dir``).

Board config keys (the ``board`` object of config.json): ``name`` = "unix", ``data_dir``,
``io_dir``, ``sim_epoch``, ``wall_epoch`` (wall-clock Unix seconds at which the simulated clock
read ``sim_epoch``), ``speed``.
"""

import select
import time

_POLL_IN = select.POLLIN


def _wall_ms():
    return time.time_ns() // 1000000


class Clock:
    """Station clock in Unix milliseconds, UTC: simulated time, settable like an RTC."""

    def __init__(self, sim_epoch, wall_epoch, speed):
        self.speed = speed
        self._base_sim_ms = sim_epoch * 1000
        self._base_wall_ms = wall_epoch * 1000

    def now_ms(self):
        return self._base_sim_ms + (_wall_ms() - self._base_wall_ms) * self.speed

    def now(self):
        return self.now_ms() // 1000

    def set_ms(self, unix_ms):
        self._base_sim_ms = unix_ms
        self._base_wall_ms = _wall_ms()

    def wait_ms(self, station_ms):
        """Real milliseconds that pass while ``station_ms`` pass on this clock."""
        return station_ms // self.speed


class Uart:
    """A serial port: a pty path opened read/write, waited on with select.poll."""

    def __init__(self, path, baud=9600):
        self.baud = baud
        self._port = open(path, "r+b")
        self._poller = select.poll()
        self._poller.register(self._port, _POLL_IN)
        self._one = bytearray(1)

    def readinto(self, buf, timeout_ms):
        """Bytes that arrive within ``timeout_ms`` into ``buf``, like machine.UART; 0 if none.

        A file's readinto blocks until the buffer is full, so read byte by byte while poll says
        more is waiting (a UART at 9600 baud delivers ~1 byte a millisecond anyway).
        """
        n = 0
        one = self._one
        timeout = timeout_ms
        while n < len(buf) and self._poller.poll(timeout):
            if not self._port.readinto(one):
                break
            buf[n] = one[0]
            n += 1
            timeout = 0
        return n

    def write(self, data):
        self._port.write(data)

    def close(self):
        self._port.close()


class ADC:
    """A 16-bit ADC input whose count the harness writes to a file."""

    def __init__(self, io_dir, pin):
        self._path = "%s/adc%d" % (io_dir, pin)

    def read_u16(self):
        with open(self._path) as f:
            return int(f.read().strip())


class Board:
    name = "unix"

    def __init__(self, cfg):
        self.data_dir = cfg["data_dir"]
        self._io_dir = cfg["io_dir"]
        self.clock = Clock(cfg["sim_epoch"], cfg["wall_epoch"], cfg.get("speed", 1))

    def uart(self, port, baud):
        return Uart(port, baud)

    def adc(self, pin):
        return ADC(self._io_dir, pin)

    def reset_cause(self):
        return 1  # power-on: every start of the unix port is a cold start

    def free_heap(self):
        import gc
        return gc.mem_free()
