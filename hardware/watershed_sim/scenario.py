"""Scenario files (TOML): the stations, their sensors and links, faults on a timeline, the
environment or recorded series they see, and how long and how fast to run.

    [scenario]
    name = "storm"
    start = 2024-03-01T00:00:00Z   # optional; default: the current hour
    duration = "6h"                # "90s", "15m", "6h", "30d" or seconds
    speed = 720                    # a poll cycle moves time by up to speed × poll_interval_s
    seed = 1

    [gateway]
    poll_interval_s = 0.5          # on the gateway's schedule clock (simulated time / speed):
                                   # its cycles wait for no wall time (clock.py)
    reply_timeout_s = 1.0
    status_interval_s = "1h"       # STATUS (clock, battery) this often, simulated

    [environment]                  # all optional: catchment, rating, weather
    area_km2 = 45.0
    reservoir_k = "3h"
    runoff_coeff = 0.6
    base_flow_m3s = 1.2
    rating = { c = 12.0, e = 0.15, b = 1.6 }
    utc_offset_h = -5
    [[environment.rain]]
    at = "1h"                      # from the start
    duration = "2h"
    intensity_mm_h = 20

    [[replay]]                     # a recorded series (or tip log) as truth
    name = "agua_fria"
    format = "usgs_rdb"            # usgs_rdb | csv | toa5 | imhea | tips
    path = "data/usgs_09512500_iv_discharge.rdb"   # relative to this file
    column = "01_00060"            # optional for usgs_rdb; required for csv, toa5 and an
                                   # imhea level log ("Level cm" or "Flow l/s"); none for a
                                   # rain log (imhea rain and tips read into a TipLog)
    align = "start"                # "start": moved to begin at the scenario start; "recorded"
    utc_offset_h = -5              # csv, toa5, imhea, tips: local times' offset from UTC
    time_column = "time"           # csv only (the default)
    mm_per_tip = "0.2"             # tips only, required: the rain each tip stands for

    [[outage]]                     # a part of the pipeline is down: broker | ingest | influxdb
    part = "broker"                # (the broker and InfluxDB killed, then started again on
    at = "2d"                      # their port with their data; the ingest stopped and
    duration = "1h"                # started again). The run starts servers of its own.

    [[link]]
    name = "bus-1"
    kind = "bus"                   # bus (RS-485 multi-drop) | radio (point to point)
    baud = 9600
    ber = 1e-6                     # bit-error rate
    burst_loss = 0.001             # fraction of bytes lost in bursts
    mean_burst_bytes = 20
    latency_s = 0.0                # radio only, one way, simulated seconds
    [[link.outage]]
    at = "3d"
    duration = "2h"

    [[station]]
    id = "SAN-01"
    address = 1
    basin = "santiago"
    link = "bus-1"
    heap_kb = 48                   # the MicroPython heap it runs in
    clock_ppm = 150                # its clock runs fast (negative: slow); the gateway's TIME
    [[station.clock_step]]         # corrects it. A step: its clock jumps (an RTC upset)
    at = "1d"
    by_s = -25
    event = { stage = 1, rise = 0.05, hold_s = 3600 }   # firmware keys: event, quality,
    [station.quality.1]                                  # clock_jump_s, outbox
    valid_max = 6.0
    [[station.power_cut]]          # the station is off (SIGKILL, then a cold start)
    at = "5d"
    duration = "1h"
    [[station.misnamed]]           # a technician loads another station's config: its HELLO
    at = "6d"                      # says `claims`, so the gateway quarantines what it sends;
    duration = "3h"                # then its own config again, and the operator releases the
    claims = "SAN-09"              # quarantine to it (gateway/quarantine.py)

    [[station.sensor]]             # the firmware's own config entry (firmware/schema.py) ...
    sensor = "sdi12"               # analog (default) | sdi12 | serial_level | rain | bme280
    port = "sdi12"                 # a name: the harness gives each a device on a pty; SDI-12
    address = "0"                  #   entries naming one port share one bus
    channels = ["stage_m", "water_temp_c"]   # catalogue names or numbers (0: not kept)
    interval_s = 900
    event_s = 300
    device = "level"               # ... plus the harness's keys: the SDI-12 model (generic,
    sources = ["stage_m", "water_temp_c"]    # level, weather, radar); each value's truth: an
                                   # environment quantity, "replay:<name>" or a number
                                   # (`source` for one value; a rain gauge: "rain_mm_h" or a
                                   # tip record)
    [[station.sensor.fault]]       # a device fault: no_reply | late | garble | bad_crc | stuck
    kind = "drift"                 #   | drift | dropout (sensor_site.py: what each does and
    at = "2d"                      #   which kinds take which)
    duration = "1d"
    per_day = 0.02                 # drift only; late_s for "late"

Every problem is reported with the file, the line and the key: ``storm.toml:31: station[0].
sensor[1].pin: expected an integer from 0 to 255, got 300``. Unknown keys are errors.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from watershed.config_reader import REQUIRED, ConfigError, Table, load_toml, parse_toml
from watershed.contracts.channels import NUMBERS
from watershed.station_tools.check import firmware_defects

from .environment import Catchment, Environment, RainEvent, Rating, River, Weather
from .line_noise import NoiseSettings, Outage
from .replay import (ReplayError, Series, TipLog, bucket_mm, read_csv, read_tip_log, read_toa5,
                     read_usgs_rdb)
from .replay_imhea import read_imhea

Replay = Series | TipLog

LINK_KINDS = ("bus", "radio")
PIPELINE_PARTS = ("broker", "ingest", "influxdb")  # what an [[outage]] may take down
SENSOR_KINDS = ("analog", "sdi12", "serial_level", "rain", "bme280")  # the firmware's kinds
SDI12_DEVICES = ("generic", "level", "weather", "radar")  # devices/sdi12.py's models
# Keys of a [[station.sensor]] that are the harness's: where truth comes from, and faults. Every
# other key is the firmware's own (firmware/schema.py checks them).
HARNESS_SENSOR_KEYS = ("source", "sources", "device", "fault")
STATION_FIRMWARE_KEYS = ("event", "quality", "clock_jump_s", "outbox")
FAULT_KINDS = ("no_reply", "late", "garble", "bad_crc", "stuck", "drift", "dropout")
SENSOR_FAULTS = {  # what each kind of device can do wrong
    "analog": ("stuck", "drift", "dropout"),
    "rain": ("dropout",),  # a blocked funnel: no tips
    "serial_level": ("no_reply", "garble", "stuck", "drift", "dropout"),
    "sdi12": FAULT_KINDS,
    "bme280": ("no_reply", "stuck", "drift", "dropout"),
}
REPLAY_FORMATS = ("usgs_rdb", "csv", "toa5", "imhea", "tips")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ScenarioError(ConfigError):
    """A scenario file cannot be run; ``problems`` are ``file:line: key: what`` strings."""


@dataclass(frozen=True)
class Window:
    """From ``start`` for ``duration_s``, in simulated Unix seconds."""

    start: float
    duration_s: float

    @property
    def end(self) -> float:
        return self.start + self.duration_s

    def covers(self, t: float) -> bool:
        return self.start <= t < self.end


Source = str | float  # an environment quantity, "replay:<name>", "" (none) or a constant


@dataclass(frozen=True)
class FaultSpec:
    """A device fault from ``window.start`` for ``window.duration_s`` (sensor_site.py does it)."""

    kind: str
    window: Window
    drift_per_day: float = 0.0  # "drift": added per simulated day from the window's start
    late_s: float = 0.0  # "late": wall seconds the reply comes late


@dataclass(frozen=True)
class SensorSpec:
    """One sensor: the firmware's own config entry (``entry``, its ports by name: the harness
    gives each name a device on a pty) and the truth of each value it reads (``sources``)."""

    entry: Mapping[str, Any]
    sources: tuple[Source, ...]
    device: str = ""  # sdi12: the simulated model (SDI12_DEVICES)
    faults: tuple[FaultSpec, ...] = ()

    @property
    def kind(self) -> str:
        return str(self.entry.get("sensor", "analog"))

    @property
    def interval_s(self) -> int:
        return int(self.entry.get("interval_s", 900))

    @property
    def channels(self) -> tuple[int, ...]:
        """The channels this sensor's values are stored on (0: a value not kept)."""
        return stored_values(self.entry)


def stored_values(entry: Mapping[str, Any]) -> tuple[int, ...]:
    """The channel of each value a firmware entry reads, in order (0: read, not kept)."""
    kind = entry.get("sensor", "analog")
    if kind in ("sdi12", "bme280"):
        channels = entry.get("channels", (17, 18, 19) if kind == "bme280" else ())
        return tuple(channels) if isinstance(channels, (list, tuple)) else ()
    if kind == "rain":
        return (entry.get("channel", 16),)
    return (entry.get("channel", entry.get("no", 0)),)


@dataclass(frozen=True)
class PartOutage:
    """A part of the pipeline down for ``window``: ``broker`` and ``influxdb`` killed (SIGKILL)
    and started again on their port with their data, ``ingest`` stopped and started again."""

    part: str  # one of PIPELINE_PARTS
    window: Window


@dataclass(frozen=True)
class Misnamed:
    """From ``window.start`` the station's config says it is ``claims``; at the window's end
    its own config is back and the operator releases what the gateway quarantined to it."""

    window: Window
    claims: str


@dataclass(frozen=True)
class StationSpec:
    id: str
    address: int
    basin: str
    link: str
    sensors: tuple[SensorSpec, ...]
    power_cuts: tuple[Window, ...] = ()
    firmware: Mapping[str, Any] = field(default_factory=dict)  # event, quality, … as given
    heap_kb: int = 48  # the MicroPython heap it runs in (station_process.HARNESS_HEAP)
    # The gateway's [[station.alert]] rules for it (gateway/config.py checks them at start), and
    # the rating files the ingest derives its discharge with (absolute paths).
    alerts: tuple[Mapping[str, Any], ...] = ()
    ratings: tuple[str, ...] = ()
    clock_ppm: float = 0.0  # its clock runs this fast (negative: slow)
    clock_steps: tuple[tuple[float, float], ...] = ()  # (when, seconds): its clock jumps
    misnamed: tuple[Misnamed, ...] = ()

    def entries(self, ports: Mapping[str, str]) -> list[dict[str, Any]]:
        """The config's sensor entries, ``ports`` mapping the scenario's port names to paths."""
        out = []
        for sensor in self.sensors:
            entry = dict(sensor.entry)
            if "port" in entry:
                entry["port"] = ports.get(entry["port"], entry["port"])
            out.append(entry)
        return out

    def firmware_config(self, board: Mapping[str, Any], ports: Mapping[str, str],
                        link_port: str) -> dict[str, Any]:
        """The station's config.json, as the firmware's validator sees it."""
        return {"station": self.id, "address": self.address, "basin": self.basin,
                "board": dict(board), "link": {"port": link_port, "baud": 9600},
                "channels": self.entries(ports), **self.firmware}


@dataclass(frozen=True)
class LinkSpec:
    name: str
    kind: str
    baud: int
    latency_s: float
    noise: NoiseSettings


@dataclass(frozen=True)
class GatewaySpec:
    poll_interval_s: float = 0.5
    reply_timeout_s: float = 1.0
    # how often the gateway asks each station for STATUS (clock, battery), in simulated
    # seconds; 0: the gateway's own default in wall seconds
    status_interval_s: float = 0.0


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path | None
    start: int
    duration_s: float
    speed: int
    seed: int
    gateway: GatewaySpec
    links: tuple[LinkSpec, ...]
    stations: tuple[StationSpec, ...]
    catchment: Catchment
    weather: Weather
    replays: Mapping[str, Replay] = field(default_factory=dict)
    outages: tuple[PartOutage, ...] = ()  # the broker, the ingest or InfluxDB down a while

    def environment(self) -> Environment:
        return Environment(River(self.catchment, self.start), self.weather)

    def stations_on(self, link: str) -> list[StationSpec]:
        return [s for s in self.stations if s.link == link]


def load_scenario(path: str | Path) -> Scenario:
    return _read(load_toml(path, error=ScenarioError), Path(path), time.time())


def parse_scenario(text: str, path: Path | None = None, now: float | None = None) -> Scenario:
    root = parse_toml(text, str(path) if path else "<scenario>", error=ScenarioError)
    return _read(root, path, now if now is not None else time.time())


def _read(root: Table, path: Path | None, now: float) -> Scenario:
    scenario = _scenario(_Reader.of(root), path, now)
    root.check()
    return scenario


class _Reader(Table):
    """The shared typed table, plus the simulator's durations."""

    def duration(self, key: str, default: Any = REQUIRED) -> float:
        """Seconds, from a number or text such as "90s", "15m", "6h", "30d"."""
        value = self.value(key, default)
        if not self.given(key):
            return value or 0.0
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)
        m = _DURATION.match(value) if isinstance(value, str) else None
        if not m:
            self.problem(key, f"expected a duration such as \"90s\", \"15m\", \"6h\", "
                              f"\"30d\" or seconds, got {value!r}")
            return 0.0
        return float(m.group(1)) * _UNIT_S[m.group(2)]


# --- sections -------------------------------------------------------------------------------


def _scenario(root: _Reader, path: Path | None, now: float) -> Scenario:
    head = root.table("scenario", required=True)
    name = head.ident("name")
    start_value = head.value("start", None)
    if start_value is None:
        start = int(now) // 3600 * 3600
    elif isinstance(start_value, dt.datetime) and start_value.tzinfo is not None:
        start = int(start_value.timestamp())
    else:
        head.problem("start", "must be a date-time with its offset, e.g. 2024-03-01T00:00:00Z")
        start = 0
    duration_s = head.duration("duration")
    if duration_s == 0 and not isinstance(head.data.get("duration"), str):
        head.problem("duration", "must be longer than 0")
    speed = head.integer("speed", 1, 1, 1_000_000)
    seed = head.integer("seed", 0)
    head.text("description", "")
    head.reject_unknown()

    gw = root.table("gateway")
    gateway = GatewaySpec(
        poll_interval_s=gw.number("poll_interval_s", GatewaySpec.poll_interval_s, 0.01, 3600),
        reply_timeout_s=gw.number("reply_timeout_s", GatewaySpec.reply_timeout_s, 0.01, 60),
        status_interval_s=gw.duration("status_interval_s", 0.0))
    gw.reject_unknown()

    catchment, weather = _environment(root.table("environment"), start)
    replays = {}
    for r in root.tables("replay"):
        name_r, series = _replay(r, path, start)
        if name_r in replays:
            r.problem("name", f"{name_r!r} is used by an earlier replay")
        if series is not None:
            replays[name_r] = series

    outages = tuple(_outage(r, start) for r in root.tables("outage"))
    links = tuple(_link(r, start) for r in root.tables("link"))
    link_names = [link.name for link in links]
    for i, name_l in enumerate(link_names):
        if name_l in link_names[:i]:
            root.problems.add(("link", i, "name"), f"{name_l!r} is used by an earlier link")
    stations = tuple(_station(r, start, link_names, replays, path)
                     for r in root.tables("station"))
    _check_stations(root, stations, links)
    for i, outage in enumerate(outages):
        if outage.window.end > start + (duration_s or 0):
            root.problems.add(("outage", i, "duration"), "must end before the scenario does")
    root.reject_unknown()
    return Scenario(name=name, path=path, start=start, duration_s=duration_s or 0.0, speed=speed,
                    seed=seed, gateway=gateway, links=links, stations=stations,
                    catchment=catchment, weather=weather, replays=replays, outages=outages)


def _environment(env: _Reader, start: int) -> tuple[Catchment, Weather]:
    rain = []
    for r in env.tables("rain"):
        rain.append(RainEvent(start + (r.duration("at") or 0), r.duration("duration") or 0,
                              r.number("intensity_mm_h", low=0, high=500)))
        r.reject_unknown()
    rating_r = env.table("rating")
    rating = Rating(c=rating_r.number("c", Rating.c, 1e-6), e=rating_r.number("e", Rating.e),
                    b=rating_r.number("b", Rating.b, 0.1, 10))
    rating_r.reject_unknown()
    catchment = Catchment(
        area_km2=env.number("area_km2", Catchment.area_km2, 0.01, 1e6),
        k_s=env.duration("reservoir_k", Catchment.k_s) or Catchment.k_s,
        runoff_coeff=env.number("runoff_coeff", Catchment.runoff_coeff, 0, 1),
        base_m3s=env.number("base_flow_m3s", Catchment.base_m3s, 0),
        rain=tuple(rain), rating=rating)
    weather = Weather(utc_offset_h=env.number("utc_offset_h", Weather.utc_offset_h, -12, 14),
                      mean_air_c=env.number("mean_air_c", Weather.mean_air_c, -40, 50),
                      pressure_hpa=env.number("pressure_hpa", Weather.pressure_hpa, 300, 1100))
    env.reject_unknown()
    return catchment, weather


def _replay(r: _Reader, path: Path | None, start: int) -> tuple[str, Replay | None]:
    name = r.ident("name")
    fmt = r.choice("format", REPLAY_FORMATS)
    file_text = r.text("path")
    column = r.text("column", "") or None
    time_column = r.text("time_column", "time")
    mm_per_tip = None
    if fmt == "tips":
        mm_per_tip = _mm_per_tip(r)
    else:
        r.value("mm_per_tip", None)  # a known key, misplaced: said below
    align = r.choice("align", ("start", "recorded"), "start")
    offset_h = r.number("utc_offset_h", 0.0, -12, 14)
    for key, only in (("time_column", "csv"), ("mm_per_tip", "tips")):
        if r.given(key) and fmt != only:
            r.problem(key, f"is for format {only!r} only")
    r.reject_unknown()
    if not file_text or fmt not in REPLAY_FORMATS:
        return name, None
    file = _beside(file_text, path)
    if fmt in ("csv", "toa5") and not column:
        r.problem("column", f"is required for format {fmt!r}")
        return name, None
    if fmt == "tips" and column:
        r.problem("column", "a tip log has no columns")
        return name, None
    try:
        record: Series | TipLog
        if fmt == "usgs_rdb":
            record = read_usgs_rdb(file, column)
        elif fmt == "csv":
            record = read_csv(file, column or "", time_column, utc_offset_h=offset_h)
        elif fmt == "toa5":
            record = read_toa5(file, column or "", utc_offset_h=offset_h)
        elif fmt == "imhea":
            record = read_imhea(file, column, utc_offset_h=offset_h)
        elif mm_per_tip is None:
            return name, None
        else:
            record = read_tip_log(file, mm_per_tip, utc_offset_h=offset_h)
    except (OSError, ReplayError) as e:
        r.problem("path", str(e))
        return name, None
    return name, record.shifted(start) if align == "start" else record


def _mm_per_tip(r: _Reader) -> Decimal | None:
    """The rain one tip stands for: a number or decimal text above 0, kept exact."""
    value = r.value("mm_per_tip")
    mm = bucket_mm(value)
    if mm is not None:
        return mm
    if value is not None:
        r.problem("mm_per_tip", f"expected a number of mm above 0 (e.g. \"0.2\"), got {value!r}")
    return None


def _window(r: _Reader, start: int) -> Window:
    window = Window(start + (r.duration("at") or 0), r.duration("duration") or 0)
    r.reject_unknown()
    return window


def _link(r: _Reader, start: int) -> LinkSpec:
    name = r.ident("name")
    kind = r.choice("kind", LINK_KINDS)
    baud = r.integer("baud", 9600, 300, 4_000_000)
    latency = r.duration("latency_s", 0.0)
    if kind == "bus" and latency:
        r.problem("latency_s", "a bus has no latency; only a radio link does")
    outages = tuple(Outage(w.start, w.end) for w in (_window(o, start) for o in r.tables("outage")))
    try:
        noise = NoiseSettings(ber=r.number("ber", 0.0), burst_loss=r.number("burst_loss", 0.0),
                              mean_burst_bytes=r.number("mean_burst_bytes", 20.0),
                              outages=outages)
    except ValueError as e:
        r.problem(None, str(e))
        noise = NoiseSettings(outages=outages)
    r.reject_unknown()
    return LinkSpec(name, kind, baud, latency, noise)


def _station(r: _Reader, start: int, links: list[str], replays: Mapping[str, Replay],
             path: Path | None) -> StationSpec:
    firmware = {key: r.value(key) for key in STATION_FIRMWARE_KEYS if r.given(key)}
    spec = StationSpec(
        id=r.ident("id"), address=r.integer("address", low=1, high=254), basin=r.ident("basin"),
        link=r.text("link"),
        power_cuts=tuple(_window(w, start) for w in r.tables("power_cut")),
        sensors=tuple(_sensor(s, start, replays) for s in r.tables("sensor")),
        firmware=firmware, heap_kb=r.integer("heap_kb", 48, 32, 1024),
        alerts=tuple(dict(a.data) for a in r.tables("alert")),
        clock_ppm=r.number("clock_ppm", 0.0, -1000, 1000),
        clock_steps=tuple(_clock_step(c, start) for c in r.tables("clock_step")),
        misnamed=tuple(_misnamed(m, start) for m in r.tables("misnamed")),
        ratings=tuple(_relative(r, "ratings", text, path) for text in r.texts("ratings")))
    for i, m in enumerate(spec.misnamed):
        if m.claims == spec.id:
            r.problems.add((*r.path, "misnamed", i, "claims"), "is the station's own id")
    if spec.link and spec.link not in links:
        r.problem("link", f"no [[link]] is named {spec.link!r}")
    if not spec.sensors:
        r.problem(None, "has no [[station.sensor]]")
    pins = [s.entry.get("pin") for s in spec.sensors]
    for i, pin in enumerate(pins):  # one input (ADC file, gauge's edges) per pin
        if pin is not None and pin in pins[:i]:
            r.problems.add((*r.path, "sensor", i, "pin"),
                           f"pin {pin} is used by an earlier sensor")
    _check_firmware(r, spec)
    r.reject_unknown()
    return spec


def _clock_step(r: _Reader, start: int) -> tuple[float, float]:
    step = (start + (r.duration("at") or 0), r.number("by_s", low=-86400 * 365, high=86400 * 365))
    r.reject_unknown()
    return step


def _outage(r: _Reader, start: int) -> PartOutage:
    outage = PartOutage(r.choice("part", PIPELINE_PARTS),
                        Window(start + (r.duration("at") or 0), r.duration("duration") or 0))
    if outage.window.duration_s <= 0:
        r.problem("duration", "must be more than 0")
    r.reject_unknown()
    return outage


def _misnamed(r: _Reader, start: int) -> Misnamed:
    misnamed = Misnamed(Window(start + (r.duration("at") or 0), r.duration("duration") or 0),
                        r.ident("claims"))
    if misnamed.window.duration_s <= 0:
        r.problem("duration", "must be more than 0: its own config comes back at the end")
    r.reject_unknown()
    return misnamed


def _beside(text: str, path: Path | None) -> Path:
    """A file named in the scenario: relative paths are taken from the scenario's folder."""
    file = Path(text)
    return path.parent / file if not file.is_absolute() and path is not None else file


def _relative(r: _Reader, key: str, text: str, path: Path | None) -> str:
    file = _beside(text, path)
    if not file.is_file():
        r.problem(key, f"{text!r}: no such file")
    return str(file)


def _check_firmware(r: _Reader, spec: StationSpec) -> None:
    """The station's config as the firmware's own validator (schema.py) sees it; each defect
    named at the scenario key it comes from."""
    cfg = spec.firmware_config(board={"name": "unix", "data_dir": "flash", "io_dir": "io",
                                      "sim_epoch": 0, "wall_epoch": 0},
                               ports={}, link_port="link")
    for key, what in firmware_defects(cfg):
        parts = key.split(".")
        if parts[0] == "channels" and len(parts) > 1 and parts[1].isdigit():
            r.problems.add((*r.path, "sensor", int(parts[1]), *parts[2:3]), what)
        elif parts[0] in STATION_FIRMWARE_KEYS:  # id, address, basin: checked above
            r.problems.add((*r.path, *parts[:1]), f"{key}: {what}" if len(parts) > 1 else what)


def _channel_number(r: _Reader, key: str, value: Any) -> int:
    """A catalogue name or a number 0-255 (0: a value not kept), as the firmware takes it."""
    if isinstance(value, str):
        number = NUMBERS.get(value, -1)
        if number < 0:
            r.problem(key, f"{value!r} is not in the channel catalogue")
        return max(number, 0)
    return value  # the firmware's validator checks numbers


def _sensor(r: _Reader, start: int, replays: Mapping[str, Replay]) -> SensorSpec:
    kind = r.choice("sensor", SENSOR_KINDS, "analog")
    entry: dict[str, Any] = {"sensor": kind}
    for key in r.data:
        if key in HARNESS_SENSOR_KEYS:
            continue
        value = r.value(key)
        if key == "channel":
            value = _channel_number(r, key, value)
        elif key == "channels" and isinstance(value, list):
            value = [_channel_number(r, key, v) for v in value]
        entry[key] = value
    if kind == "rain":
        # Tips of one harness step reach the pin together (sensor_site.RainGauge): a debounce
        # would count all but the first as bounces.
        if entry.setdefault("debounce_ms", 0) != 0:
            r.problem("debounce_ms", "must be 0 in a simulation: the harness hands over the "
                                     "tips of one time step together")
    stored = stored_values(entry)
    sources = _sources(r, kind, len(stored), replays, entry.get("mm_per_tip_um", 200))
    device = r.choice("device", SDI12_DEVICES, "generic") if kind == "sdi12" else ""
    faults = tuple(_fault(f, start, kind, entry) for f in r.tables("fault"))
    r.reject_unknown()
    return SensorSpec(entry=entry, sources=sources, device=device, faults=faults)


def _sources(r: _Reader, kind: str, values: int, replays: Mapping[str, Replay],
             bucket_um: Any = 200) -> tuple[Source, ...]:
    """One truth per value the entry reads: ``source`` for one, ``sources`` for several."""
    if r.given("sources"):
        given = r.value("sources")
        if r.given("source"):
            r.problem("source", "give source or sources, not both")
        if not isinstance(given, list):
            r.problem("sources", "must be a list, one source per value the sensor returns")
            return ()
        if len(given) != values:
            r.problem("sources", f"needs one source per value the sensor returns ({values})")
    else:
        given = [r.value("source", REQUIRED if kind != "bme280" else
                         ["air_temp_c", "rh_pct", "pressure_hpa"])]
        if isinstance(given[0], list):
            given = given[0]
    sources: list[Source] = []
    for i, source in enumerate(given):
        key = "sources" if r.given("sources") else "source"
        if isinstance(source, (int, float)) and not isinstance(source, bool):
            sources.append(source)  # a constant
        elif not isinstance(source, str):
            r.problem(key, f"{source!r}: must be an environment quantity, "
                           f"\"replay:<name>\" or a number")
        elif source.startswith("replay:"):
            replay = replays.get(source[7:])
            if replay is None:
                r.problem(key, f"no [[replay]] is named {source[7:]!r}")
            elif (kind == "rain") != isinstance(replay, TipLog):
                r.problem(key, f"{source!r}: a rain gauge takes tips (format imhea rain or "
                               f"tips), other sensors a series of values")
            elif isinstance(replay, TipLog) and replay.mm_per_tip * 1000 != bucket_um:
                r.problem(key, f"{source!r} has tips of {replay.mm_per_tip} mm, the gauge's "
                               f"mm_per_tip_um is {bucket_um}")
            sources.append(source)
        elif kind == "rain" and source != "rain_mm_h":
            r.problem(key, f"a rain gauge's tips come from \"rain_mm_h\" or a tip record "
                           f"(\"replay:<name>\"), not {source!r}")
        elif source in Environment.QUANTITIES or source == "":
            sources.append(source)
        else:
            r.problem(key, f"must be one of {', '.join(Environment.QUANTITIES)}, "
                           f"\"replay:<name>\" or a number, not {source!r}")
            sources.append("")
    return tuple(sources)


def _fault(r: _Reader, start: int, kind: str, entry: Mapping[str, Any]) -> FaultSpec:
    fault = r.choice("kind", FAULT_KINDS)
    window = Window(start + (r.duration("at") or 0), r.duration("duration") or 0)
    drift = r.number("per_day", 0.0) if fault == "drift" else 0.0
    late_s = r.number("late_s", 0.5, 0.0, 60.0) if fault == "late" else 0.0
    r.reject_unknown()
    if fault and fault not in SENSOR_FAULTS.get(kind, ()):
        r.problem("kind", f"{fault!r} does not apply to a {kind} sensor; it takes "
                          f"{', '.join(SENSOR_FAULTS[kind])}")
    if fault == "bad_crc" and not entry.get("crc"):
        r.problem("kind", "bad_crc needs the sensor's crc = true (the station asks for CRCs)")
    return FaultSpec(fault, window, drift_per_day=drift, late_s=late_s)


def _check_stations(root: _Reader, stations: tuple[StationSpec, ...],
                    links: tuple[LinkSpec, ...]) -> None:
    ids = [s.id for s in stations]
    for i, s in enumerate(stations):
        if s.id in ids[:i]:
            root.problems.add(("station", i, "id"), f"{s.id!r} is used by an earlier station")
        same_link = [o for o in stations[:i] if o.link == s.link]
        if s.address in [o.address for o in same_link]:
            root.problems.add(("station", i, "address"),
                              f"address {s.address} is used by an earlier station on {s.link!r}")
    for i, link in enumerate(links):
        on_link = [s for s in stations if s.link == link.name]
        if link.kind == "radio" and len(on_link) > 1:
            root.problems.add(("link", i, "kind"),
                              f"a radio link joins one station, {len(on_link)} use {link.name!r}")
    if not stations:
        root.problem("station", "a scenario needs at least one [[station]]")
