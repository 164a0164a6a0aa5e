"""Simulated SDI-12 sensors on a simulated SDI-12 bus (v1.4, as docs/sdi12.md summarises it).

The bus is a protocol object: ``receive(data, now)`` takes the bytes the master (the station)
wrote and the time they arrived; ``pop_due(now)`` returns the bytes the sensors have put on the
line by then; ``next_due()`` says when the next ones are due. ``DevicePty`` (pty.py) runs it on a
raw pty whose path the firmware opens; tests can drive it directly with made-up times.

How the unix port's pty stands in for the wire (the firmware's hal_unix does the same):

- **Break**: the byte ``0x00`` (``BREAK``). A Linux UART reports a received break as a NUL when
  PARMRK is off, and SDI-12 data is printable ASCII, so the marker cannot be confused with data.
- **Parity error**: a byte with bit 7 set (``PARITY_ERROR``). SDI-12 is 7E1, so a single flipped
  bit always breaks parity: a garbled byte is one the receiver can tell is bad, as a real UART
  does. Two sensors answering at once (``?!`` on a shared bus) garble each other the same way.

What the sensors honour:

- Addresses ``0-9 A-Z a-z``; a sensor answers only commands ending in ``!`` addressed to it.
  ``?!`` makes every awake sensor answer (collide if more than one).
- Standby: after a break every sensor listens; after a command addressed to one sensor the others
  go back to standby, and all do after ``standby_s`` (100 ms) of marking. A sensor in standby
  ignores everything until the next break. So the master must break when the line has been idle
  > 87 ms or when it addresses a different sensor.
- ``a!``, ``aI!``, ``aAb!``, ``?!``, ``aM!``/``aM1-9!``/``aMC!``/``aMC1-9!`` (``atttn``, service
  request ``a<CR><LF>`` when ready if ttt > 0), ``aC!``/``aCC!``/``aC1-9!``/``aCC1-9!``
  (``atttnn``, no service request), ``aV!``, ``aD0-9!`` (values split at whole values so each
  response carries at most 35 characters of values after M/V, 75 after C; kept until the next
  M, C or V), ``aR0-9!``/``aRC0-9!`` (75 characters; unsupported ones answer ``a<CR><LF>``).
  CRC variants append CRC-16/ARC as 3 characters before ``<CR><LF>``.
- Any other valid command addressed to a sensor while its M (or V) measurement is running aborts
  it: no service request, and D then returns no values. Unknown or malformed commands get
  silence (and abort nothing).
- Values: ``+``/``-``, at most 7 digits, optional decimal point.

Faults (``Faults``, per sensor, as probabilities; or ``sensor.force(kind, times)`` to make the
next replies fail deterministically): ``no_reply``, ``late`` (reply ``late_s`` late), ``garble``
(one byte of a reply garbled: a bit flipped, hence a parity error), ``wrong_crc``, ``stuck``
(values frozen), ``drift_per_hour`` (added to every value, growing from when the sensor was
made), ``dropout`` (a measurement command starts ``dropout_s`` of silence).

Truth for tests: ``sensor.measured`` lists every measurement with all its values as text, and
``sensor.reports`` every data response put on the line, with the values it carried and the fault
applied to it (None when it went out intact); the bus's ``commands`` every command it heard.
With ``history=N`` (a scenario's devices: weeks of a fleet) each keeps only its last N entries.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable, MutableSequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

BREAK = 0x00
PARITY_ERROR = 0x80
CRLF = b"\r\n"
ADDRESS_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
MAX_VALUES_M = 35  # characters of values in one D response after M or V
MAX_VALUES_C = 75  # after C, and in an R response
STANDBY_S = 0.100
REPLY_S = 0.005  # a sensor starts answering within 15 ms
FAULT_KINDS = ("no_reply", "late", "garble", "wrong_crc")

Number = float | int | Decimal | str
Source = Callable[[float], Number]


def crc16_arc(data: bytes, crc: int = 0) -> int:
    """CRC-16/ARC as SDI-12 specifies it: init 0, reflected polynomial 0xA001."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def crc_chars(crc: int) -> bytes:
    """The 3 ASCII characters that carry a CRC in an SDI-12 response."""
    return bytes((0x40 | (crc >> 12), 0x40 | ((crc >> 6) & 0x3F), 0x40 | (crc & 0x3F)))


def format_value(value: Number, decimals: int) -> str:
    """SDI-12 value text: sign, at most 7 digits, optional point (``+1.234``, ``-0.5``)."""
    d = Decimal(str(value)) if not isinstance(value, Decimal) else value
    while True:
        q = d.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
        digits = len(q.as_tuple().digits)
        if digits <= 7 or decimals == 0:
            break
        decimals -= 1
    if digits > 7:  # beyond what the format carries: the sensor clips at its limit
        q = Decimal(9999999).copy_sign(d)
    text = f"{q:f}"
    return text if text.startswith("-") else "+" + text


@dataclass(frozen=True)
class Quantity:
    name: str
    decimals: int
    default: Number = 0


@dataclass
class Faults:
    """Fault modes of one sensor; probabilities are per reply (``dropout``: per measurement)."""

    no_reply: float = 0.0
    late: float = 0.0
    late_s: float = 0.5
    garble: float = 0.0
    wrong_crc: float = 0.0
    stuck: bool = False
    drift_per_hour: float = 0.0
    dropout: float = 0.0
    dropout_s: float = 60.0


@dataclass(frozen=True)
class Reported:
    """One data response as the sensor put it on the line."""

    time: float
    address: str
    command: str  # what was asked: "D0", "R0", ...
    values: tuple[str, ...]
    fault: str | None  # None: the response went out intact


@dataclass
class Measured:
    """One measurement a sensor made (M, C, V or R), with every value it produced."""

    time: float
    address: str
    command: str  # "M", "MC1", "C", "CC", "V", "R0" ...
    values: tuple[str, ...]
    aborted: bool = False


@dataclass
class _Out:
    due: float
    order: int
    data: bytes
    cancelled: bool = False

    def __lt__(self, other: _Out) -> bool:
        return (self.due, self.order) < (other.due, other.order)


@dataclass
class _Measurement:
    record: Measured
    ready_at: float
    service_request: bool  # M and V: the sensor signals when ready; C: it does not
    crc: bool
    limit: int
    sr: _Out | None = None


def history_log(limit: int | None) -> MutableSequence[Any]:
    """A device's log for tests: every entry, or only the last ``limit`` (each entry is an
    object the garbage collector scans: a long simulation keeps a window, not millions)."""
    return [] if limit is None else deque(maxlen=limit)


@dataclass
class CommandSeen:
    """A command as the bus saw it (for tests of the master's timing)."""

    time: float
    text: str
    after_break: bool  # a break came since the previous command
    idle_s: float  # marking before its first character


class SDI12Sensor:
    """A generic SDI-12 sensor; subclasses name their measurements (see the module docstring).

    ``measurements`` maps a measurement set ("" for M/C, "1".."9" for M1/C1…) to its quantities;
    ``continuous`` maps an R index to a measurement set. Values come from ``values`` (set them with
    ``set``) or from ``sources`` (callables of ``clock()``), in that order of preference reversed:
    a source wins.
    """

    vendor = "WATRSHED"
    model = "SIM   "
    version = "100"
    measurements: dict[str, tuple[Quantity, ...]] = {}
    continuous: dict[int, str] = {}

    def __init__(self, address: str = "0", *, measure_s: float = 1.0,
                 values: dict[str, Number] | None = None,
                 sources: dict[str, Source] | None = None, faults: Faults | None = None,
                 serial: str = "", seed: int = 0,
                 clock: Callable[[], float] = time.time, history: int | None = None) -> None:
        if address not in ADDRESS_CHARS:
            raise ValueError(f"not an SDI-12 address: {address!r}")
        self.address = address
        self.measure_s = measure_s
        self.serial = serial[:13]
        self.clock = clock
        self.values: dict[str, Number] = {
            q.name: q.default for qs in self.measurements.values() for q in qs}
        self.values.update(values or {})
        self.sources: dict[str, Source] = dict(sources or {})
        self.faults = faults or Faults()
        self.rng = random.Random(seed)
        self.measured: MutableSequence[Measured] = history_log(history)
        self.reports: MutableSequence[Reported] = history_log(history)
        self.aborted = 0
        self._forced: Counter[str] = Counter()
        self._t0 = clock()
        self._last: dict[str, tuple[str, ...]] = {}  # for "stuck"
        self._running: _Measurement | None = None
        self._data: tuple[str, ...] = ()
        self._data_crc = False
        self._data_limit = MAX_VALUES_M
        self._data_command = ""
        self._silent_until = -math.inf

    # --- the test's handles ---------------------------------------------------------------

    def set(self, name: str, value: Number) -> None:
        if name not in self.values:
            raise KeyError(f"{type(self).__name__} has no quantity {name!r}")
        self.values[name] = value

    def force(self, kind: str, times: int = 1) -> None:
        """Make the next ``times`` replies fail with ``kind`` (one of FAULT_KINDS)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULT_KINDS}")
        self._forced[kind] += times

    # --- values -------------------------------------------------------------------------------

    def sample(self, mset: str) -> tuple[str, ...]:
        """The values of one measurement set now, as SDI-12 text."""
        if self.faults.stuck and mset in self._last:
            return self._last[mset]
        now = self.clock()
        drift = Decimal(str(self.faults.drift_per_hour)) * Decimal(str((now - self._t0) / 3600))
        out = []
        for q in self.measurements[mset]:
            source = self.sources.get(q.name)
            raw = source(now) if source is not None else self.values[q.name]
            value = Decimal(str(raw)) + drift if self.faults.drift_per_hour else raw
            out.append(format_value(value, q.decimals))
        self._last[mset] = tuple(out)
        return self._last[mset]

    # --- protocol -----------------------------------------------------------------------------

    def handle(self, body: str, now: float, bus: SDI12Bus) -> None:
        """A command addressed to this sensor (``body`` without address and ``!``)."""
        if now < self._silent_until:
            return
        reply = self._parse(body)
        if reply is None:
            return  # not a command this sensor knows: silence, and nothing is aborted
        kind, arg, crc = reply
        running = self._running
        if running is not None and now < running.ready_at and running.service_request:
            self._abort(running)
        self._finish(now)
        a = self.address.encode()
        if kind in ("M", "C", "V", "R") and self.faults.dropout and \
                self.rng.random() < self.faults.dropout:
            self._silent_until = now + self.faults.dropout_s
            return
        if kind == "ack":
            bus.reply(self, a + CRLF, now)
        elif kind == "I":
            ident = f"{self.address}14{self.vendor:8.8}{self.model:6.6}{self.version:3.3}{self.serial}"
            bus.reply(self, ident.encode() + CRLF, now)
        elif kind == "A":
            self.address = arg
            bus.reply(self, arg.encode() + CRLF, now)
        elif kind in ("M", "C", "V"):
            self._start(kind, arg, crc, now, bus)
        elif kind == "D":
            self._send_data(int(arg), now, bus)
        elif kind == "R":
            self._send_continuous(int(arg), crc, now, bus)

    def _parse(self, body: str) -> tuple[str, str, bool] | None:
        if body == "":
            return ("ack", "", False)
        if body == "I":
            return ("I", "", False)
        if len(body) == 2 and body[0] == "A" and body[1] in ADDRESS_CHARS:
            return ("A", body[1], False)
        if body == "V":
            return ("V", "", False)
        head, rest = body[0], body[1:]
        crc = rest.startswith("C") and head in "MCR"
        if crc:
            rest = rest[1:]
        if head in "MC":
            if rest == "" or (len(rest) == 1 and rest in "123456789"):
                return (head, rest, crc)
            return None
        if head == "D" and not crc and len(rest) == 1 and rest.isdigit():
            return ("D", rest, False)
        if head == "R" and len(rest) == 1 and rest.isdigit():
            return ("R", rest, crc)
        return None

    def _abort(self, running: _Measurement) -> None:
        running.record.aborted = True
        if running.sr is not None:
            running.sr.cancelled = True
        self._running = None
        self._data = ()
        self.aborted += 1

    def _finish(self, now: float) -> None:
        """A measurement whose time has come: its values become the data buffer."""
        running = self._running
        if running is not None and now >= running.ready_at:
            self._running = None
            self._data = running.record.values
            self._data_crc = running.crc
            self._data_limit = running.limit
            self._data_command = running.record.command

    def _start(self, kind: str, mset: str, crc: bool, now: float, bus: SDI12Bus) -> None:
        command = kind + ("C" if crc else "") + mset
        if kind == "V":
            values: tuple[str, ...] = ("+0",)  # verification: status OK
            measure_s = 0.0
        elif mset in self.measurements:
            values = self.sample(mset)
            measure_s = self.measure_s
        else:
            values, measure_s = (), 0.0  # a set this sensor lacks: 0 values, at once
        record = Measured(now, self.address, command, values)
        self.measured.append(record)
        ttt = min(999, math.ceil(measure_s))
        n = len(values)
        head = f"{self.address}{ttt:03d}{n:02d}" if kind == "C" else f"{self.address}{ttt:03d}{n}"
        self._data = ()  # data are kept until the next M, C or V
        running = _Measurement(record, now + measure_s, kind != "C" and ttt > 0, crc,
                               MAX_VALUES_C if kind == "C" else MAX_VALUES_M)
        self._running = running
        sent = bus.reply(self, head.encode() + CRLF, now)
        if measure_s == 0:
            self._finish(now)
        elif running.service_request and sent:
            running.sr = bus.reply(self, self.address.encode() + CRLF, now + measure_s,
                                   faults=False)

    def _chunks(self, values: tuple[str, ...], limit: int) -> list[tuple[str, ...]]:
        chunks: list[tuple[str, ...]] = []
        current: list[str] = []
        size = 0
        for v in values:
            if current and size + len(v) > limit:
                chunks.append(tuple(current))
                current, size = [], 0
            current.append(v)
            size += len(v)
        if current:
            chunks.append(tuple(current))
        return chunks

    def _send_data(self, index: int, now: float, bus: SDI12Bus) -> None:
        chunks = self._chunks(self._data, self._data_limit)
        values = chunks[index] if index < len(chunks) else ()
        self._send_values(f"D{index}", values, self._data_crc, now, bus)

    def _send_continuous(self, index: int, crc: bool, now: float, bus: SDI12Bus) -> None:
        mset = self.continuous.get(index)
        if mset is None:
            bus.reply(self, self.address.encode() + CRLF, now)  # unsupported
            return
        values = self.sample(mset)
        self.measured.append(Measured(now, self.address, f"R{'C' if crc else ''}{index}", values))
        chunk = self._chunks(values, MAX_VALUES_C)[0] if values else ()
        self._send_values(f"R{index}", chunk, crc, now, bus)

    def _send_values(self, command: str, values: tuple[str, ...], crc: bool, now: float,
                     bus: SDI12Bus) -> None:
        line = (self.address + "".join(values)).encode()
        wrong = False
        if crc:
            check = crc16_arc(line)
            wrong = self._fault("wrong_crc")
            line += crc_chars(check ^ 0x0101 if wrong else check)
        fault: list[str | None] = ["wrong_crc" if wrong else None]
        bus.reply(self, line + CRLF, now, report=(command, values, fault))

    def _fault(self, kind: str) -> bool:
        if self._forced[kind]:
            self._forced[kind] -= 1
            return True
        p = getattr(self.faults, kind)
        return bool(p) and self.rng.random() < p


@dataclass
class SDI12Bus:
    """One SDI-12 line with sensors on it; see the module docstring."""

    sensors: list[SDI12Sensor] = field(default_factory=list)
    standby_s: float = STANDBY_S
    reply_s: float = REPLY_S
    history: int | None = None  # entries each log keeps (history_log); None: all
    commands: MutableSequence[CommandSeen] = field(default_factory=list)
    ignored: MutableSequence[CommandSeen] = field(default_factory=list)  # asleep, or garbled

    def __post_init__(self) -> None:
        if self.history is not None:
            self.commands = deque(self.commands, maxlen=self.history)
            self.ignored = deque(self.ignored, maxlen=self.history)
        self._out: list[_Out] = []
        self._order = itertools.count()
        self._line = bytearray()
        self._line_start = 0.0
        self._line_idle = 0.0
        self._awake = False
        self._selected: str | None = None  # None: every sensor listens
        self._last_activity = -math.inf
        self._broke = False

    def add(self, sensor: SDI12Sensor) -> SDI12Sensor:
        self.sensors.append(sensor)
        return sensor

    def sensor(self, address: str) -> SDI12Sensor:
        for s in self.sensors:
            if s.address == address:
                return s
        raise KeyError(address)

    # --- master → sensors ---------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        for byte in data:
            if byte == BREAK:
                self._awake = True
                self._selected = None
                self._broke = True
                self._line.clear()
                self._last_activity = now
                continue
            idle = now - self._last_activity
            if idle > self.standby_s:
                self._awake = False  # marking too long: back to standby until a break
            self._last_activity = now
            if not self._line:
                self._line_start, self._line_idle = now, idle
            self._line.append(byte)
            if byte == 0x21:  # "!"
                command = bytes(self._line)
                self._line.clear()
                self._dispatch(command, now)
            elif len(self._line) > 16:
                self._line.clear()  # no command is this long: noise

    def _dispatch(self, command: bytes, now: float) -> None:
        seen = CommandSeen(now, command.decode("latin-1"), self._broke, self._line_idle)
        self._broke = False
        if not self._awake or any(b & PARITY_ERROR for b in command) or len(command) < 2:
            self.ignored.append(seen)
            return
        self.commands.append(seen)
        text = command.decode("ascii")
        address, body = text[0], text[1:-1]
        listening = [s for s in self.sensors
                     if self._selected is None or s.address == self._selected]
        if address == "?":
            if body == "":
                responses = [s.address.encode() + CRLF for s in listening
                             if now >= s._silent_until]
                self._selected = None
                if len(responses) == 1:
                    self.schedule(now + self.reply_s, responses[0])
                elif responses:  # everyone talks at once: the bytes collide
                    width = max(map(len, responses))
                    mixed = bytearray(width)
                    for r in responses:
                        for i, b in enumerate(r):
                            mixed[i] |= b
                    self.schedule(now + self.reply_s, bytes(b | PARITY_ERROR for b in mixed))
            return
        self._selected = address  # every other sensor returns to standby
        for s in listening:
            if s.address == address:
                s.handle(body, now, self)
                return

    # --- sensors → master ---------------------------------------------------------------------

    def reply(self, sensor: SDI12Sensor, data: bytes, now: float, *, faults: bool = True,
              report: tuple[str, tuple[str, ...], list[str | None]] | None = None) -> _Out | None:
        """Put a sensor's reply on the line, through its faults; None if it stays silent."""
        due = now + self.reply_s
        fault: str | None = report[2][0] if report else None
        if faults:
            if sensor._fault("no_reply"):
                if report:
                    sensor.reports.append(Reported(now, sensor.address, report[0], report[1],
                                                   "no_reply"))
                return None
            if sensor._fault("late"):
                due += sensor.faults.late_s
                fault = fault or "late"
            if sensor._fault("garble"):
                i = sensor.rng.randrange(len(data) - 2)
                data = data[:i] + bytes([(data[i] ^ 0x01) | PARITY_ERROR]) + data[i + 1:]
                fault = "garble"
        if report:
            sensor.reports.append(Reported(now, sensor.address, report[0], report[1], fault))
        return self.schedule(due, data)

    def schedule(self, due: float, data: bytes) -> _Out:
        out = _Out(due, next(self._order), data)
        heapq.heappush(self._out, out)
        return out

    def next_due(self) -> float | None:
        while self._out and self._out[0].cancelled:
            heapq.heappop(self._out)
        return self._out[0].due if self._out else None

    def pop_due(self, now: float) -> bytes:
        """The bytes sensors have put on the line by ``now``, in order."""
        sent = bytearray()
        while self._out and self._out[0].due <= now:
            out = heapq.heappop(self._out)
            if out.cancelled:
                continue
            sent += out.data
            self._last_activity = max(self._last_activity, out.due)
            if len(out.data) == 3 and out.data.endswith(CRLF):
                # a service request (or short ack): the sensor is awake and selected, so the
                # master may go on without a break
                self._awake = True
                self._selected = chr(out.data[0])
        return bytes(sent)

    def run_until(self, now: float) -> bytes:
        """For tests: everything due by ``now``, letting measurements finish on the way."""
        for s in self.sensors:
            s._finish(now)
        return self.pop_due(now)


# --- typical sensors ----------------------------------------------------------------------------


class LevelSensor(SDI12Sensor):
    """Level/pressure transducer, OTT PLS / Meter Hydros 21 style.

    M: stage (m, 3 decimals), water temperature (°C, 2); M1: pressure (kPa, 3), conductivity
    (µS/cm, 0). R0 is the M set. About 1 s to measure (500 ms warm-up + measurement).
    """

    vendor = "OTT HYDR"
    model = "PLS   "
    version = "140"
    measurements = {
        "": (Quantity("stage_m", 3, "1.000"), Quantity("water_temp_c", 2, "12.50")),
        "1": (Quantity("pressure_kpa", 3, "9.807"), Quantity("conductivity_uscm", 0, 120)),
    }
    continuous = {0: ""}


class WeatherSensor(SDI12Sensor):
    """All-in-one weather sensor, Campbell ClimaVue50 / Meter ATMOS 41 style.

    M (9 values, more than 35 characters, so D0 and D1): solar (W/m², 0), rain since the last
    measurement (mm, 3), wind speed (m/s, 2), wind direction (°, 1), gust (m/s, 2), air
    temperature (°C, 1), vapour pressure (kPa, 3), barometric pressure (kPa, 2), RH (%, 1).
    M1: tilt north/east (°, 1). R0 is the M set (75 characters: one response).
    """

    vendor = "CAMPBELL"
    model = "CV50  "
    version = "210"
    measurements = {
        "": (Quantity("solar_wm2", 0, 0), Quantity("rain_mm", 3, "0.000"),
             Quantity("wind_speed_ms", 2, "1.20"), Quantity("wind_dir_deg", 1, "180.0"),
             Quantity("wind_gust_ms", 2, "2.50"), Quantity("air_temp_c", 1, "8.5"),
             Quantity("vapour_pressure_kpa", 3, "0.950"), Quantity("pressure_kpa", 2, "62.10"),
             Quantity("rh_pct", 1, "85.0")),
        "1": (Quantity("tilt_n_deg", 1, "0.2"), Quantity("tilt_e_deg", 1, "-0.1")),
    }
    continuous = {0: ""}


class RadarVelocitySensor(SDI12Sensor):
    """Radar surface-velocity sensor (velocity, signal quality; discharge on M1)."""

    vendor = "SOMMER  "
    model = "RQ30  "
    version = "300"
    measurements = {
        "": (Quantity("velocity_ms", 3, "0.850"), Quantity("quality_pct", 0, 92)),
        "1": (Quantity("discharge_m3s", 3, "4.200"),),
    }
    continuous = {0: ""}

