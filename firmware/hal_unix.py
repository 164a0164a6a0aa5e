"""Unix/HIL board: the firmware under the MicroPython unix port, driven by a test harness.

What cannot exist on a PC sits here, at the lowest level, and nowhere above it:
- serial ports are pty paths (the harness's VirtualSerialLink), raw, and a read returns what has
  arrived without waiting for more (VMIN 0: watershed_sim.serial_link.make_raw);
- ADC inputs are files ``<io_dir>/adc<pin>`` holding a raw 16-bit count, written by the harness;
- the clock runs ``speed`` times faster than wall time from ``sim_epoch`` (Unix seconds), so a
  harness runs hours of station time in minutes; the gateway is given the same clock;
- flash is a directory (``data_dir``).

- SDI-12 ports (``Sdi12Port``) are ptys too, 8-bit clean: a **break** is the byte 0x00 (what a
  Linux UART delivers for a break without PARMRK; SDI-12 data is printable ASCII) and a byte with
  bit 7 set is one received with a **parity error** (a real 7E1 UART flags those). The
  simulator on the other end (watershed_sim.devices.sdi12) speaks the same convention;
- I2C (hal_unix_i2c.py, imported by ``Board.i2c``) is a register image per device,
  ``<io_dir>/i2c<bus>_<addr>.bin`` (up to 256 bytes, the
  register at its offset), written by the harness; the firmware's writes go into it too. A
  missing file is a device that does not acknowledge (OSError ENODEV);
- pin edges come from the harness as lines ``<pin>\n`` appended to ``<io_dir>/edges``; the board
  hands them to the handler given to ``Pin.irq`` whenever the firmware waits in the HAL
  (``sleep_ms``, ``lightsleep``, ``Uart.readinto``) — a lightsleep given the link ends when
  bytes arrive on it, as a board's RX wake pin ends one — or calls ``Board.run_irqs()`` — as an IRQ
  that fired while the CPU slept, one call per edge. Edges written before the board started
  are ignored (the board was off);
- the watchdog is a counter (``watchdog_feeds``); sleeps follow the simulated clock.

Time is either wall time × ``speed`` (``Clock``: what firmware tests use) or, with the board
key ``harness`` (a folder), time the harness drives (``hal_unix_harness.HarnessClock``), so a
run gives the same readings however busy the machine is: the harness writes its time (Unix
ms) to ``<harness>/now`` (by rename, never half-written) and moves it only when no station is
awake; a station asks to sleep until a time by writing ``<harness ms>\n`` to the FIFO
``<harness>/sleep`` and the harness answers every request with one byte on the FIFO
``<harness>/wake`` once its time has got there (or at once when a later request supersedes
it). Bytes on the link end a sleep early: the station then writes ``w\n`` on ``sleep``
before it reads them, and the harness counts it awake until its next request (it moves time
only between the gateway's exchanges, never while a link's bytes wait unread in a station's
port or a station is awake, and never past the wake time asked for).

Board config keys (the ``board`` object of config.json): ``name`` = "unix", ``data_dir``,
``io_dir``, ``sim_epoch``, ``wall_epoch`` (wall-clock Unix seconds at which the simulated clock
read ``sim_epoch``), ``speed``, ``harness`` (optional, see above).
"""

import os
import select
import time

from micropython import const

_POLL_IN = select.POLLIN
_BREAK = b"\x00"
_MARK_MS = const(9)  # marking after a break before the address (>= 8.33 ms)
_IRQ_FALLING = const(2)
_IRQ_RISING = const(1)
_edge_sources = []  # type: list[Board]  # boards whose pin edges a wait in the HAL delivers


def _run_irqs():
    for board in _edge_sources:
        board.run_irqs()


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

    def readinto(self, buf, timeout_ms):
        """Bytes that arrive within ``timeout_ms`` into ``buf``, like machine.UART; 0 if none.

        The harness's ptys return what has arrived without waiting for more (VMIN 0, the
        module docstring), so once poll says bytes are there one readinto takes them all: a
        frame costs two system calls, not two a byte.
        """
        if _edge_sources:
            _run_irqs()
        if not self._poller.poll(timeout_ms):
            return 0
        return self._port.readinto(buf) or 0

    def waiting(self, timeout_ms):
        """True when bytes arrive within ``timeout_ms`` (they stay unread)."""
        return bool(self._poller.poll(timeout_ms))

    def write(self, data):
        self._port.write(data)

    def close(self):
        self._port.close()


class Sdi12Port(Uart):
    """An SDI-12 line on a pty (see the module docstring for the break and parity markers).
    ``mark_ms``: the marking after a break in real milliseconds (the clock's speed shortens it,
    as it does every sleep)."""

    def __init__(self, path, mark_ms=_MARK_MS):
        super().__init__(path, 1200)
        self._mark_ms = mark_ms
        self._one = bytearray(1)

    def send_break(self):
        """A break, then the marking a sensor needs before the address."""
        self._port.write(_BREAK)
        if self._mark_ms:
            time.sleep_ms(self._mark_ms)

    def drain(self):
        """Throw away whatever has arrived and not been read."""
        while self._poller.poll(0):
            if not self._port.readinto(self._one):
                break


class Pin:
    """An input pin whose edges the harness sends (module docstring); ``value()`` is 1."""

    IRQ_FALLING = _IRQ_FALLING
    IRQ_RISING = _IRQ_RISING

    def __init__(self, board, no):
        self.no = no
        self._board = board
        self.handler = None

    def irq(self, handler=None, trigger=_IRQ_FALLING):
        self.handler = handler
        self._board._irq_pins[self.no] = self
        if self._board not in _edge_sources:
            _edge_sources.append(self._board)

    def value(self):
        return 1


class ADC:
    """A 16-bit ADC input whose count the harness writes to a file."""

    def __init__(self, io_dir, pin):
        self._path = "%s/adc%d" % (io_dir, pin)

    def read_u16(self):
        with open(self._path) as f:  # a bounded read: read() starts a 256-byte buffer
            return int(f.read(12).strip())


class Board:
    name = "unix"

    def __init__(self, cfg):
        # Defaults (safe mode with no usable board config): flash and inputs beside the
        # firmware, the wall clock.
        self.data_dir = cfg.get("data_dir", "data")
        self._io_dir = cfg.get("io_dir", "io")
        for d in (self.data_dir, self._io_dir):
            try:
                os.mkdir(d)
            except OSError:
                pass  # exists
        self._harness = None
        if "harness" in cfg:  # only a harness-driven board carries it
            from hal_unix_harness import HarnessClock
            self._harness = HarnessClock(cfg["harness"], cfg.get("speed", 1))
        wall = _wall_ms() // 1000
        # A HarnessClock is a Clock (hal_unix_harness.py), so the board's clock has one type.
        self.clock = self._harness or Clock(cfg.get("sim_epoch", wall),
                                            cfg.get("wall_epoch", wall), cfg.get("speed", 1))
        self.watchdog_feeds = 0
        self._irq_pins = {}
        try:  # edges from before this boot came while the board was off: lost
            self._edges_read = os.stat(self._io_dir + "/edges")[6]
        except OSError:
            self._edges_read = 0

    def uart(self, port, baud):
        return Uart(port, baud)

    def sdi12(self, port):
        return Sdi12Port(port, self.clock.wait_ms(_MARK_MS))

    def adc(self, pin):
        return ADC(self._io_dir, pin)

    def i2c(self, bus=0, scl=None, sda=None, freq=100000):
        from hal_unix_i2c import I2C  # only a station with an I2C sensor carries it
        return I2C(self._io_dir, bus)

    def pin(self, no, pull_up=True):
        return Pin(self, no)

    def run_irqs(self):
        """Hand the edges the harness has sent since the last call to their pins' handlers."""
        path = self._io_dir + "/edges"
        try:
            n = os.stat(path)[6] - self._edges_read
            if n <= 0:  # nothing new: called on every wait, so no file opened, no buffer
                return
            with open(path) as f:
                f.seek(self._edges_read)
                text = f.read(n)  # just the new bytes (read() would start a 256-byte buffer)
        except OSError:
            return
        end = text.rfind("\n") + 1  # a line still being written waits for the next call
        self._edges_read += end
        for line in text[:end].split():
            pin = self._irq_pins.get(int(line))
            if pin is not None and pin.handler is not None:
                pin.handler(pin)

    def feed_watchdog(self):
        self.watchdog_feeds += 1

    def sleep_ms(self, station_ms):
        """Sleep ``station_ms`` of station time (real time is shorter when speed > 1)."""
        if self._harness is not None:
            self._harness.sleep(station_ms)
            return
        if _edge_sources:
            _run_irqs()
        time.sleep_ms(self.clock.wait_ms(station_ms))
        if _edge_sources:
            _run_irqs()

    def lightsleep(self, station_ms, link=None):
        """As sleep_ms; with ``link`` (a Uart), bytes arriving on it end the sleep, as the RX
        line wakes a board (hal_esp32, hal_rp2): True if they did."""
        if self._harness is not None:
            return self._harness.sleep(station_ms, link)
        if link is None:
            self.sleep_ms(station_ms)
            return False
        if _edge_sources:
            _run_irqs()
        woke = link.waiting(self.clock.wait_ms(station_ms))
        if _edge_sources:
            _run_irqs()
        return woke

    def persistent_dir(self):
        """Where state that must survive a reset lives (RTC memory has no unix counterpart)."""
        return self.data_dir

    def reset_cause(self):
        return 1  # power-on: every start of the unix port is a cold start

    def free_heap(self):
        import gc
        return gc.mem_free()
