"""SDI-12 master (v1.4): several sensors on one data line, through the board's SDI-12 port.
The protocol facts it follows are summarised in docs/sdi12.md.

The port comes from the board (``board.sdi12(port)``): ``send_break()`` (a ≥12 ms break, then
≥8.33 ms of marking), ``write(cmd)`` (returns with the line released), ``readinto(buf,
timeout_ms)`` (bytes that arrive within the timeout, 0 if none) and ``drain()``. On a board that
is a UART at 1200 baud 7E1 behind an inverting level shifter; on the unix port a pty where a
break is the byte 0x00 and a parity error sets bit 7 (hal_unix.Sdi12Port).

Wiring (ESP32)::

    UART2 TX ─ 74LVC1G125 (OE ← GPIO 4: low drives the line) ─┬─ SDI-12 data (5 V, sensors)
    UART2 RX ─ inverting level shifter ───────────────────────┘

    master = SDI12Master(board.sdi12(2))
    level = SDI12Sensor(master, "0", "M", crc=True, channels=(1, 3), shift=(0, 0))
    level.read()   # [(1, 1234, -3, 0), (3, 1250, -2, 0)]

What it does on every command: a break first when the line has been marking > 87 ms or the
previous command went to another sensor (and on every retry); stale input drained; the reply
must start within ``response_ms`` and its characters follow within ``_CHAR_MS`` of each other;
it is checked — printable 7-bit characters only (bit 7 = parity error), ``<CR><LF>`` at the end,
the address of the sensor asked, the CRC on the ``…C`` commands, the shape of the reply — and a
reply that fails any check is retried after ≥16.67 ms, ``retries`` times (default 3), then
``OSError(ETIMEDOUT)`` (no reply) or ``OSError(EIO)`` (bad replies). Every timeout uses
``ticks_diff``. The installation commands (``a!``, ``aI!``, ``aAb!``) are in sdi12_setup.py,
imported only by whoever installs a sensor, so the sampling path does not carry them. Waits for a
service request (``aM!`` with ttt > 0) or for a concurrent
measurement (``aC!``) call ``idle()`` at least every second, so a watchdog can be fed.

Config (sensor kind ``"sdi12"``, one entry per sensor; entries with the same ``port`` share
one master)::

    {"sensor": "sdi12", "port": "/dev/pts/7" (unix) or 2 (board UART id),
     "address": "0",           SDI-12 address
     "measure": "M",           "M", "M1".."M9", "C", "C1".."C9", "R0".."R9"
     "crc": true,              use aMC!/aCC!/aRCn! and check the CRC (default true)
     "channels": [1, 3],       channel number of each value in order; 0 skips a value
     "shift": [0, 0],          optional power-of-ten shift per value (mm -> m: -3), exact
     "retries": 3, "response_ms": 50, "wake_ms": 0}   (per port: the first entry's win)

``read()`` returns ``[(channel, mantissa, exponent, flags)]`` with each value exactly as the
sensor sent it (``wire.parse_decimal``); a value the sensor did not send (fewer than promised,
an aborted measurement) is ``(channel, 0, 0, MISSING)``. A sensor that does not answer raises
OSError after its retries; ``drivers.read_or_missing`` turns that into MISSING readings.
"""

import time

from micropython import const

import wire

_LF = const(0x0A)
_CR = const(0x0D)
_PLUS = const(0x2B)
_MINUS = const(0x2D)
_BREAK_AFTER_MS = const(87)  # line marking longer than this: sensors may be in standby
_RETRY_WAIT_MS = const(17)  # ≥ 16.67 ms between retries
_CHAR_MS = const(20)  # a character (8.33 ms at 1200 baud) plus the 1.66 ms gap, with margin
_RESPONSE_MS = const(50)  # first reply byte: 15 ms after our stop bit, one character, margin
_IDLE_EVERY_MS = const(1000)  # feed the watchdog at least this often in long waits
_SR_MARGIN_MS = const(1000)  # a service request may come a little after ttt seconds
_MAX_REPLY = const(96)  # a + 75 value characters + 3 CRC + CR LF, with room to spare
_ETIMEDOUT = const(110)
_EIO = const(5)


def crc16(buf, start, end):
    """CRC-16/ARC of ``buf[start:end]`` (SDI-12's CRC; check value of "123456789" is 0xBB3D)."""
    crc = 0
    for i in range(start, end):
        crc ^= buf[i]
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


def _digit(c):
    return 0x30 <= c <= 0x39


class SDI12Master:
    """One SDI-12 line. ``idle`` is called during long waits (feed the watchdog there)."""

    def __init__(self, port, retries=3, response_ms=_RESPONSE_MS, wake_ms=0, idle=None):
        self.port = port
        self.retries = retries
        self.response_ms = response_ms
        self.wake_ms = wake_ms
        self.idle = idle
        self.errors = 0  # failed attempts (for the technician)
        self._rx = bytearray(_MAX_REPLY)
        self._rxv = memoryview(self._rx)
        self._one = bytearray(1)
        self._cmd = bytearray(8)
        self._n = 0  # bytes of the last good reply in _rx, CR LF included
        self._last_ms = time.ticks_ms()
        self._last_addr = -1
        self._broke = False

    # --- one command, checked and retried ------------------------------------------------

    def command(self, addr, body, crc=False):
        """Send ``addr + body + "!"``; returns the reply length without CRC and CR LF.

        The reply is in ``self._rx[:length]`` (address first). Raises OSError when every
        attempt failed."""
        cmd = self._cmd
        cmd[0] = addr
        k = 1
        for c in body:
            cmd[k] = c
            k += 1
        cmd[k] = 0x21  # "!"
        k += 1
        heard = False
        for attempt in range(self.retries + 1):
            if attempt:
                self.errors += 1
                self._wait_ms(_RETRY_WAIT_MS)
            if (attempt or addr != self._last_addr
                    or time.ticks_diff(time.ticks_ms(), self._last_ms) > _BREAK_AFTER_MS):
                self.port.send_break()
                if self.wake_ms:
                    time.sleep_ms(self.wake_ms)
            self.port.drain()  # a late reply to an earlier attempt is not this one's
            self.port.write(memoryview(cmd)[:k])
            self._last_addr = addr
            n = self._read_reply()
            self._last_ms = time.ticks_ms()
            if n:
                heard = True
                length = self._check(addr, n, crc)
                if length:
                    return length
        raise OSError(_EIO if heard else _ETIMEDOUT)

    def _read_reply(self):
        """Bytes up to and including LF; 0 if none came in time. Read as many at a time as
        have come (a read per byte costs the unix port a poll and a read per byte); any after
        the LF are not this reply's (the next command drains them anyway)."""
        rx = self._rx
        n = 0
        timeout = self.response_ms
        while n < _MAX_REPLY:
            got = self.port.readinto(self._rxv[n:], timeout)
            if not got:
                return n  # nothing, or a reply cut short (no LF: _check rejects it)
            end = n + got
            while n < end:
                n += 1
                if rx[n - 1] == _LF:
                    return n
            timeout = _CHAR_MS
        return n

    def _check(self, addr, n, crc):
        """Length of the reply without CRC and CR LF if it is sound, else 0."""
        rx = self._rx
        if n < 3 or rx[n - 1] != _LF or rx[n - 2] != _CR or rx[0] != addr:
            return 0
        end = n - 2
        if crc:
            if end < 4:
                return 0
            end -= 3  # its 3 characters are 0x40-0x7F (DEL too): checked by value below
        for i in range(end):
            c = rx[i]
            if c & 0x80 or c < 0x20 or c > 0x7E:
                return 0  # parity error or a control character: garbled
        if crc:
            value = crc16(rx, 0, end)
            if (rx[end] != 0x40 | (value >> 12) or rx[end + 1] != 0x40 | ((value >> 6) & 0x3F)
                    or rx[end + 2] != 0x40 | (value & 0x3F)):
                return 0
        return end

    def _wait_ms(self, ms):
        start = time.ticks_ms()
        while True:
            left = ms - time.ticks_diff(time.ticks_ms(), start)
            if left <= 0:
                return
            time.sleep_ms(min(left, _IDLE_EVERY_MS))
            if self.idle:
                self.idle()

    # --- the SDI-12 commands (a!, aI!, aAb! for installing: drivers/sdi12_setup.py) ----------

    def measure(self, addr, kind=b"M", index=b"", crc=True):
        """Start a measurement (M, C or V), wait until it is ready, collect it with D0…D9.

        Returns a list of ``(mantissa, exponent)``, as many as the sensor promised or fewer if
        it delivered fewer (an aborted measurement delivers none)."""
        a = _addr(addr)
        concurrent = kind == b"C"
        n = self.command(a, kind + (b"C" if crc and kind != b"V" else b"") + index)
        rx = self._rx
        if n != (6 if concurrent else 5):
            raise OSError(_EIO)
        for i in range(1, n):
            if not _digit(rx[i]):
                raise OSError(_EIO)
        ttt = (rx[1] - 0x30) * 100 + (rx[2] - 0x30) * 10 + rx[3] - 0x30
        count = rx[4] - 0x30
        if concurrent:
            count = count * 10 + rx[5] - 0x30
        if ttt:
            if concurrent:
                self._wait_ms(ttt * 1000)
            else:
                self._service_request(a, ttt * 1000 + _SR_MARGIN_MS)
        values = []  # type: list[tuple[int, int]]
        d = bytearray(b"D0")
        for i in range(10):
            if len(values) >= count:
                break
            d[1] = 0x30 + i
            n = self.command(a, d, crc and kind != b"V")
            if n == 1:
                break  # no more values: the measurement was aborted or had fewer
            if not self._values(n, values):
                raise OSError(_EIO)
        return values

    def continuous(self, addr, index=0, crc=True):
        """``aRn!`` / ``aRCn!``: the values of a continuous measurement (none if unsupported)."""
        values = []  # type: list[tuple[int, int]]
        body = bytearray(b"RC0" if crc else b"R0")
        body[-1] = 0x30 + index
        n = self.command(_addr(addr), body, crc)
        if n > 1 and not self._values(n, values):
            raise OSError(_EIO)
        return values

    def _values(self, n, out):
        """Parse the values in ``_rx[1:n]`` onto ``out``; False if they are not SDI-12 values."""
        rx = self._rx
        start = 1
        if rx[1] != _PLUS and rx[1] != _MINUS:
            return False
        for i in range(2, n + 1):
            if i == n or rx[i] == _PLUS or rx[i] == _MINUS:
                if i - start < 2 or i - start > 9:
                    return False
                try:
                    out.append(wire.parse_decimal(rx[start:i]))
                except ValueError:
                    return False
                start = i
        return True

    def _service_request(self, a, timeout_ms):
        """Wait for ``a<CR><LF>`` from a sensor measuring; False when it did not come."""
        one = self._one
        start = time.ticks_ms()
        seen = 0  # 0: waiting for the address, 1: CR, 2: LF
        while True:
            left = timeout_ms - time.ticks_diff(time.ticks_ms(), start)
            if left <= 0:
                return False
            got = self.port.readinto(one, min(left, _IDLE_EVERY_MS))
            if self.idle:
                self.idle()
            if not got:
                continue
            c = one[0]
            if seen == 0:
                seen = 1 if c == a else 0
            elif seen == 1:
                seen = 2 if c == _CR else (1 if c == a else 0)
            elif c == _LF:
                self._last_ms = time.ticks_ms()
                self._last_addr = a
                return True
            else:
                seen = 1 if c == a else 0


def _addr(addr):
    if isinstance(addr, str):
        addr = ord(addr)
    if not (0x30 <= addr <= 0x39 or 0x41 <= addr <= 0x5A or 0x61 <= addr <= 0x7A):
        raise ValueError("not an SDI-12 address")
    return addr


class SDI12Sensor:
    """One sensor's measurement, as the sampling engine reads it (see the module docstring)."""

    def __init__(self, master, address, measure="M", crc=True, channels=(), shift=None):
        self.master = master
        self.address = _addr(address)
        if not measure or measure[0] not in "MCR" or len(measure) > 2 or (
                len(measure) == 2 and not "0" <= measure[1] <= "9"):
            raise ValueError("sdi12 measure must be M, M1-9, C, C1-9 or R0-9")
        self._kind = measure[0].encode()
        self._index = measure[1:].encode()
        self.crc = crc
        self.channels = tuple(channels)
        self.shift = tuple(shift) if shift else (0,) * len(self.channels)
        if len(self.shift) != len(self.channels):
            raise ValueError("sdi12 shift needs one entry per channel")

    def read(self):
        if self._kind == b"R":
            values = self.master.continuous(self.address, int(self._index), self.crc)
        else:
            values = self.master.measure(self.address, self._kind, self._index, self.crc)
        out = []
        for i in range(len(self.channels)):
            ch = self.channels[i]
            if not ch:
                continue
            if i < len(values):
                mantissa, exponent = values[i]
                out.append((ch, mantissa, exponent + self.shift[i], 0))
            else:
                out.append((ch, 0, 0, wire.MISSING))
        return out


def from_config(cfg, board, masters):
    """The driver for one ``"sdi12"`` config entry; ``masters`` maps a port to its master."""
    port = cfg["port"]
    master = masters.get(port)
    if master is None:
        master = SDI12Master(board.sdi12(port), cfg.get("retries", 3),
                             cfg.get("response_ms", _RESPONSE_MS), cfg.get("wake_ms", 0),
                             getattr(board, "feed_watchdog", None))
        masters[port] = master
    return SDI12Sensor(master, cfg["address"], cfg.get("measure", "M"), cfg.get("crc", True),
                       cfg.get("channels", ()), cfg.get("shift"))
