"""A station's sensors as the harness simulates them: one device per firmware config entry.

Each ``[[station.sensor]]`` of a scenario is the firmware's own entry (scenario.SensorSpec)
plus where each of its values comes from; here it gets the device the firmware talks to:

- ``analog`` (4-20 mA transducers, the battery divider): a count served read by read
  (analog_input.AnalogInput);
- ``sdi12``: the simulated sensors of devices/sdi12.py (``device`` = level, weather, radar or
  generic), all entries naming one ``port`` on one bus (DevicePty);
- ``serial_level``: a free-running range sensor (devices/range_sensor.py) on a pty;
- ``rain``: tips as edges on the gauge's pin (``<io_dir>/edges``), from a tip record or the
  environment's rain intensity integrated into tips of the bucket size;
- ``bme280``: the chip's register image on the simulated I2C bus (devices/bme280.py).

Values follow the harness's clock (clock.HarnessClock): SDI-12 and serial devices read their
truth at the simulated time a station asks, pins and register images change only between
time steps, when every station sleeps. The protocol timing of the ptys is wall time, as the
firmware's UART timeouts are; an SDI-12 sensor's few milliseconds before it answers pass
``speed`` times faster, as the station's marking after a break does (hal_unix.Sdi12Port).

Faults (scenario.FaultSpec) hold over their window: ``stuck`` (the value at the fault's start),
``drift`` (``per_day`` added, growing from the fault's start) and ``dropout`` (nothing: a
missing reading; for a gauge, no tips) change the truth; ``no_reply``, ``late``, ``garble`` and
``bad_crc`` are the device's own (devices/sdi12.py Faults; a BME280 not answering), switched at
the first time step in the window and the first after it, before any station wakes.
"""

from __future__ import annotations

import math
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from .analog_input import AdcScale, AnalogInput
from .clock import HarnessClock
from .devices import (DevicePty, Faults, LevelSensor, RadarVelocitySensor, RangeSensor, SDI12Bus,
                      SDI12Sensor, WeatherSensor)
from .devices.bme280 import Bme280Image
from .devices.sdi12 import REPLY_S, Quantity
from .replay import Series, TipLog
from .scenario import FaultSpec, Scenario, SensorSpec, Source, StationSpec

log = logging.getLogger(__name__)

Value = float | Decimal | None
Truth = Callable[[float], Value]

SDI12_MODELS: dict[str, type[SDI12Sensor]] = {
    "level": LevelSensor, "weather": WeatherSensor, "radar": RadarVelocitySensor}
RANGE_FRAME_S = 0.02  # a range sensor's frame period (wall s): a 5-frame median in 0.1 s
DEVICE_FAULTS = ("no_reply", "late", "garble", "bad_crc")
SILENT_DROPOUT = ("sdi12", "serial_level")  # a dropout of theirs: no reply on the line
# What each SDI-12 device keeps of its logs (measured, reports, commands heard): its last hours,
# for a look at a run. A scenario reads none of them, and all of a 30-day fleet's would be
# millions of objects the garbage collector scans in each of its full collections.
DEVICE_HISTORY = 500


class SensorSite:
    """The simulated devices behind one station's sensor entries."""

    def __init__(self, spec: StationSpec, io_dir: Path, clock: HarnessClock,
                 scenario: Scenario) -> None:
        self.spec = spec
        self.io_dir = Path(io_dir)
        self.io_dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.environment = scenario.environment()
        self.scenario = scenario
        self.analog: list[AnalogInput] = []
        self.ptys: dict[str, DevicePty] = {}  # the scenario's port name -> its device
        self.sdi12: list[tuple[SensorSpec, SDI12Sensor]] = []
        self.ranges: list[tuple[SensorSpec, RangeSensor]] = []
        self.gauges: list[RainGauge] = []
        self.chips: list[Bme280] = []
        buses: dict[str, SDI12Bus] = {}
        for n, sensor in enumerate(spec.sensors):
            truths = [] if sensor.kind == "rain" else [  # a gauge's truth is its tips
                self._faulted(self._truth(source), sensor.faults, sensor.kind)
                for source in sensor.sources]
            entry = sensor.entry
            if sensor.kind == "analog":
                self.analog.append(AnalogInput(self.io_dir, entry["pin"], _adc_scale(entry),
                                               truths[0], clock.now))
            elif sensor.kind == "sdi12":
                if entry["port"] not in buses:
                    buses[entry["port"]] = SDI12Bus(reply_s=REPLY_S / scenario.speed,
                                                       history=DEVICE_HISTORY)
                bus = buses[entry["port"]]
                device = bus.add(_sdi12_sensor(sensor, truths, clock, seed=scenario.seed + n))
                self.sdi12.append((sensor, device))
            elif sensor.kind == "serial_level":
                range_sensor = _range_sensor(sensor, truths[0], clock, seed=scenario.seed + n)
                self.ranges.append((sensor, range_sensor))
                self.ptys[entry["port"]] = DevicePty(range_sensor)
            elif sensor.kind == "rain":
                self.gauges.append(RainGauge(self.io_dir, sensor, self._tips(sensor)))
            elif sensor.kind == "bme280":
                self.chips.append(Bme280(Bme280Image(self.io_dir, entry.get("bus", 0),
                                                     entry.get("address", 0x76)), truths))
        for name, bus in buses.items():
            self.ptys[name] = DevicePty(bus)
        self.switches = self._device_fault_switches()
        self.faults_done: list[tuple[float, str]] = []  # (simulated time, what), as they came
        self.running = False

    @property
    def ports(self) -> dict[str, str]:
        """The scenario's port names and the pty paths the firmware opens for them."""
        return {name: pty.path for name, pty in self.ptys.items()}

    # --- truth ----------------------------------------------------------------------------------

    def _truth(self, source: Source) -> Truth:
        if not isinstance(source, str):
            constant = Decimal(str(source))
            return lambda t: constant
        if source == "":
            return lambda t: None
        if source.startswith("replay:"):
            series = self.scenario.replays[source[len("replay:"):]]
            assert isinstance(series, Series)
            return series.value_at
        environment = self.environment
        return lambda t: environment.value(source, t)

    @staticmethod
    def _faulted(truth: Truth, faults: tuple[FaultSpec, ...], kind: str) -> Truth:
        # a serial device's dropout is silence (_device_faults), never a made-up value
        changes = [f for f in faults if f.kind in ("stuck", "drift") or (
            f.kind == "dropout" and kind not in SILENT_DROPOUT)]
        if not changes:
            return truth

        def value(t: float) -> Value:
            for f in changes:
                if f.window.covers(t):
                    if f.kind == "dropout":
                        return None
                    if f.kind == "stuck":
                        return truth(f.window.start)
                    base = truth(t)
                    if base is None:
                        return None
                    days = Decimal(str((t - f.window.start) / 86400))
                    return Decimal(str(base)) + Decimal(str(f.drift_per_day)) * days
            return truth(t)
        return value

    def _tips(self, sensor: SensorSpec) -> list[float]:
        """Every tip of the run: a tip record's, or the environment's rain in buckets."""
        source = sensor.sources[0]
        start, end = self.scenario.start, self.scenario.start + self.scenario.duration_s
        if isinstance(source, str) and source.startswith("replay:"):
            log_ = self.scenario.replays[source[len("replay:"):]]
            assert isinstance(log_, TipLog)
            return [t for t in log_.tips if start <= t < end]
        bucket_mm = sensor.entry.get("mm_per_tip_um", 200) / 1000
        return rain_tips(lambda t: self.environment.value("rain_mm_h", t), start, end, bucket_mm,
                         wet=self.scenario.catchment.wet_windows())

    # --- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve the inputs (before the station boots)."""
        self.running = True
        for analog in self.analog:
            analog.start()
        self.clock.on_step(self._step)
        self._step(self.clock.now())

    def _device_fault_switches(self) -> list[_FaultSwitch]:
        switches = []
        for sensor, device in [*self.sdi12, *self.ranges]:
            pty = self.ptys[sensor.entry["port"]]
            faults = [f for f in sensor.faults if f.kind in DEVICE_FAULTS or f.kind == "dropout"]
            if faults:
                switches.append(_FaultSwitch(f"{self.spec.id} {sensor.kind}", faults,
                                             _set_faults(pty, device)))
        for chip, sensor in zip(self.chips, [s for s in self.spec.sensors if s.kind == "bme280"]):
            faults = [f for f in sensor.faults if f.kind == "no_reply"]
            if faults:
                switches.append(_FaultSwitch(f"{self.spec.id} BME280", faults, chip.fault))
        return switches

    def _step(self, now: float) -> None:
        """Time moved to ``now`` (every station sleeps): the devices' own faults of this instant
        on or off, tips so far onto the pins, the chips' registers to the new conditions. So a
        station reads what holds at its reading's time, whatever else is going on."""
        for switch in self.switches:
            change = switch.at(now)
            if change:
                self.faults_done.append((now, change))
        if not self.running:
            return
        for gauge in self.gauges:
            gauge.deliver_until(now)
        for chip in self.chips:
            chip.update(now)

    def power_off(self) -> None:
        """The station is off: tips meanwhile are lost (hal_unix ignores edges from before a
        boot), so none is handed over until it is back."""
        self.running = False

    def power_on(self) -> None:
        now = self.clock.now()
        for gauge in self.gauges:
            gauge.skip_until(now)
        self.running = True
        self._step(now)

    def stop(self) -> None:
        self.running = False
        for analog in self.analog:
            analog.stop()
        for pty in self.ptys.values():
            pty.close()


class _FaultSwitch:
    """A device's own faults over time: ``at(now)`` turns the one covering ``now`` on (or none)
    and says what changed."""

    def __init__(self, name: str, faults: list[FaultSpec],
                 apply: Callable[[FaultSpec | None], None]) -> None:
        self.name = name
        self.faults = faults
        self.apply = apply
        self.current: FaultSpec | None = None

    def at(self, now: float) -> str:
        fault = next((f for f in self.faults if f.window.covers(now)), None)
        if fault is self.current:
            return ""
        ended, self.current = self.current, fault
        self.apply(fault)
        return (f"{self.name} {fault.kind}" if fault is not None
                else f"{self.name} {ended.kind if ended else ''} ends")


def _set_faults(pty: DevicePty, device: Any) -> Callable[[FaultSpec | None], None]:
    def apply(fault: FaultSpec | None) -> None:
        with pty.lock:
            device.faults = _device_faults(fault) if fault is not None else Faults()
    return apply


def _device_faults(f: FaultSpec) -> Faults:
    if f.kind == "late":
        return Faults(late=1.0, late_s=f.late_s)
    if f.kind in ("dropout", "no_reply"):  # a dropout: the sensor is gone from the line
        return Faults(no_reply=1.0)
    if f.kind == "garble":
        return Faults(garble=1.0)
    return Faults(wrong_crc=1.0)  # bad_crc


def _adc_scale(entry: Any) -> AdcScale:
    return AdcScale(entry.get("exponent", 0), entry.get("scale_num", 1),
                    entry.get("scale_den", 1), entry.get("offset", 0))


def _sdi12_sensor(sensor: SensorSpec, truths: list[Truth], clock: HarnessClock,
                  seed: int) -> SDI12Sensor:
    """The sensor model answering on the entry's address, its values of the set the entry
    measures taken from ``truths`` in order (the rest keep the model's defaults)."""
    entry = sensor.entry
    model = SDI12_MODELS.get(sensor.device)
    if model is None:  # generic: as many values as the entry keeps, three decimals
        model = type("GenericSensor", (SDI12Sensor,), {
            "measurements": {"": tuple(Quantity(f"value{i}", 3) for i in range(len(truths)))},
            "continuous": {0: ""}})
    measure = entry.get("measure", "M")
    mset = (model.continuous.get(int(measure[1:]), "") if measure.startswith("R")
            else measure[1:])
    names = [q.name for q in model.measurements.get(mset, ())]
    sources: dict[str, Callable[[float], Any]] = {}
    known = []  # the truths of values the scenario gives (a source "" keeps the model's value)
    for name, truth, source in zip(names, truths, sensor.sources):
        if source != "":
            sources[name] = _at_sim_time(truth, clock)
            known.append(truth)
    device = model(entry["address"], measure_s=0, sources=sources, seed=seed, clock=clock.now,
                   history=DEVICE_HISTORY)
    device.handle = _silent_without_truth(device.handle, known, clock)  # type: ignore[method-assign]
    return device


def _at_sim_time(truth: Truth, clock: HarnessClock) -> Callable[[float], Any]:
    return lambda _device_time: truth(clock.now())


def _silent_without_truth(handle: Callable[..., None], truths: list[Truth],
                          clock: HarnessClock) -> Callable[..., None]:
    """A sensor asked while the record has no value (a replay's gap) does not answer: the
    station stores the reading missing; it never gets a number the record does not hold."""
    def guarded(body: str, now: float, bus: Any) -> None:
        if any(truth(clock.now()) is None for truth in truths):
            return
        handle(body, now, bus)
    return guarded


def _range_sensor(sensor: SensorSpec, truth: Truth, clock: HarnessClock,
                  seed: int) -> RangeSensor:
    """Range = mount height - stage (the source is the stage in metres)."""
    mount_mm = sensor.entry["mount_mm"]

    def range_mm(_device_time: float) -> int | None:
        stage = truth(clock.now())
        if stage is None:
            return None  # no truth (a replay's gap): no frame, the station stores it missing
        return int(round(mount_mm - Decimal(str(stage)) * 1000))
    digits = 5 if mount_mm > 9999 else 4
    return RangeSensor(period_s=RANGE_FRAME_S, digits=digits, source=range_mm, seed=seed)


def rain_tips(intensity_mm_h: Callable[[float], float], start: float, end: float,
              bucket_mm: float, step_s: float = 10.0,
              wet: Sequence[tuple[float, float]] | None = None) -> list[float]:
    """Tip times of a gauge under ``intensity_mm_h``: a tip each time the rain fallen since
    ``start`` (integrated in ``step_s`` steps) passes another bucket. ``wet``: the windows
    ``[from, to)`` outside which the intensity is 0; only their steps are asked (a dry step
    adds 0.0, so the tips are the same), and a month of a fleet's gauges is not 250,000 asks
    each before the stations boot."""
    last = math.ceil((end - start) / step_s) + 1  # past the end: the loop's test stops it
    if wet is None:
        steps: Iterable[int] = range(last)
    else:  # each window's steps, a step more either side for rounding: asked, they add 0.0
        steps = sorted({i for a, b in wet
                        for i in range(max(0, math.floor((a - start) / step_s) - 1),
                                       min(last, math.ceil((b - start) / step_s) + 1))})
    tips: list[float] = []
    fallen = 0.0
    next_tip = bucket_mm
    for i in steps:
        t = start + i * step_s
        if t >= end:
            break
        fallen += intensity_mm_h(t) * step_s / 3600
        while fallen >= next_tip - 1e-12:
            tips.append(t + step_s)
            next_tip += bucket_mm
    return [t for t in tips if t < end]


class RainGauge:
    """A tipping bucket: each tip an edge on the gauge's pin, handed over once the harness's
    time has reached it (``deliver_until``), so the station counts it in the interval it fell
    in. ``delivered`` and ``lost`` (the station off, the funnel blocked) are the truth."""

    def __init__(self, io_dir: Path, sensor: SensorSpec, tips: list[float]) -> None:
        self.path = Path(io_dir) / "edges"
        self.pin = sensor.entry["pin"]
        self.channel = sensor.entry.get("channel", 16)
        self.bucket_um = sensor.entry.get("mm_per_tip_um", 200)
        self.blocked = [f.window for f in sensor.faults if f.kind == "dropout"]
        self.tips = sorted(tips)
        self.delivered: list[float] = []
        self.lost: list[float] = []
        self._next = 0
        self._lock = threading.Lock()

    def deliver_until(self, now: float) -> None:
        with self._lock:
            due = []
            while self._next < len(self.tips) and self.tips[self._next] <= now:
                t = self.tips[self._next]
                self._next += 1
                if any(w.covers(t) for w in self.blocked):
                    self.lost.append(t)
                else:
                    due.append(t)
            if due:
                with open(self.path, "a") as f:  # one write: the station reads whole lines
                    f.write(f"{self.pin}\n" * len(due))
                self.delivered += due

    def skip_until(self, now: float) -> None:
        """Tips up to ``now`` fell while the station was off: lost."""
        with self._lock:
            while self._next < len(self.tips) and self.tips[self._next] <= now:
                self.lost.append(self.tips[self._next])
                self._next += 1

    def rain_um_between(self, t0: float, t1: float) -> int:
        """Micrometres of rain the station was handed in (t0, t1]."""
        return sum(1 for t in self.delivered if t0 < t <= t1) * self.bucket_um


class Bme280:
    """A BME280 whose registers show the truth (temperature, humidity, pressure) at each step."""

    def __init__(self, image: Bme280Image, truths: list[Truth]) -> None:
        self.image = image
        self.truths = truths
        self.silent = False
        self._shown: tuple[Any, ...] | None = None

    def fault(self, fault: FaultSpec | None) -> None:
        """A no_reply fault begins: the chip answers no more; or (None) it ends: it answers
        again from the next update (SensorSite._step)."""
        self.silent = fault is not None
        self._shown = None
        if self.silent:
            self.image.remove()

    def update(self, now: float) -> None:
        if self.silent:
            return
        values = tuple(truth(now) for truth in self.truths)
        if values == self._shown:
            return
        self._shown = values
        if any(v is None for v in values):
            self.image.remove()  # a dropout: the chip does not answer
            return
        temp, rh, hpa = (float(v) for v in values)  # type: ignore[arg-type]
        self.image.write(temp, rh, hpa)
