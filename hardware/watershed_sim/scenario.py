"""Scenario files (TOML): the stations, their sensors and links, faults on a timeline, the
environment or recorded series they see, and how long and how fast to run.

    [scenario]
    name = "storm"
    start = 2024-03-01T00:00:00Z   # optional; default: the current hour
    duration = "6h"                # "90s", "15m", "6h", "30d" or seconds
    speed = 720                    # each gateway poll moves time by up to speed × poll_interval_s
    seed = 1

    [gateway]
    poll_interval_s = 0.5          # wall seconds (time moves only at polls: clock.HarnessClock)
    reply_timeout_s = 1.0

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
    [[station.power_cut]]          # the station is off (SIGKILL, then a cold start)
    at = "5d"
    duration = "1h"
    [[station.sensor]]
    channel = "stage_m"            # catalogue name or number
    kind = "analog"                # the only kind today; SDI-12 and serial sensors plug in here
    pin = 26
    interval_s = 900
    exponent = -3
    full_scale = 5000              # value at count 65535, in units of 10^exponent
    source = "stage_m"             # an environment quantity, or "replay:<name>"
    [[station.sensor.dropout]]     # the sensor gives nothing: readings flagged missing
    at = "2d"
    duration = "30m"

Every problem is reported with the file, the line and the key: ``storm.toml:31: station[0].
sensor[1].pin: expected an integer from 0 to 255, got 300``. Unknown keys are errors.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from watershed.config_reader import REQUIRED, ConfigError, Table, load_toml, parse_toml
from watershed.contracts.channels import NUMBERS
from watershed.contracts.ids import is_valid_id

from .environment import Catchment, Environment, RainEvent, Rating, River, Weather
from .line_noise import NoiseSettings, Outage
from .replay import (ReplayError, Series, TipLog, read_csv, read_tip_log, read_toa5,
                     read_usgs_rdb)
from .replay_imhea import read_imhea

LINK_KINDS = ("bus", "radio")
SENSOR_KINDS = ("analog",)  # the seam: SDI-12 / serial sensor kinds are added here
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


@dataclass(frozen=True)
class SensorSpec:
    channel: int
    kind: str
    pin: int
    interval_s: int
    exponent: int
    scale_num: int
    scale_den: int
    offset: int
    source: str  # environment quantity or "replay:<name>"
    dropouts: tuple[Window, ...] = ()


@dataclass(frozen=True)
class StationSpec:
    id: str
    address: int
    basin: str
    link: str
    sensors: tuple[SensorSpec, ...]
    power_cuts: tuple[Window, ...] = ()


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
    replays: Mapping[str, Series | TipLog] = field(default_factory=dict)

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
        reply_timeout_s=gw.number("reply_timeout_s", GatewaySpec.reply_timeout_s, 0.01, 60))
    gw.reject_unknown()

    catchment, weather = _environment(root.table("environment"), start)
    replays = {}
    for r in root.tables("replay"):
        name_r, series = _replay(r, path, start)
        if name_r in replays:
            r.problem("name", f"{name_r!r} is used by an earlier replay")
        if series is not None:
            replays[name_r] = series

    links = tuple(_link(r, start) for r in root.tables("link"))
    link_names = [link.name for link in links]
    for i, name_l in enumerate(link_names):
        if name_l in link_names[:i]:
            root.problems.add(("link", i, "name"), f"{name_l!r} is used by an earlier link")
    stations = tuple(_station(r, start, link_names, replays) for r in root.tables("station"))
    _check_stations(root, stations, links)
    root.reject_unknown()
    return Scenario(name=name, path=path, start=start, duration_s=duration_s or 0.0, speed=speed,
                    seed=seed, gateway=gateway, links=links, stations=stations,
                    catchment=catchment, weather=weather, replays=replays)


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


def _replay(r: _Reader, path: Path | None, start: int) -> tuple[str, Series | TipLog | None]:
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
    file = Path(file_text)
    if not file.is_absolute() and path is not None:
        file = path.parent / file
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
    try:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            mm = Decimal(str(value))
            if mm.is_finite() and mm > 0:
                return mm
    except InvalidOperation:
        pass
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


def _station(r: _Reader, start: int, links: list[str], replays: Mapping[str, Series]
             ) -> StationSpec:
    spec = StationSpec(
        id=r.ident("id"), address=r.integer("address", low=1, high=254), basin=r.ident("basin"),
        link=r.text("link"),
        power_cuts=tuple(_window(w, start) for w in r.tables("power_cut")),
        sensors=tuple(_sensor(s, start, replays) for s in r.tables("sensor")))
    if spec.link and spec.link not in links:
        r.problem("link", f"no [[link]] is named {spec.link!r}")
    if not spec.sensors:
        r.problem(None, "has no [[station.sensor]]")
    pins = [s.pin for s in spec.sensors]
    channels = [s.channel for s in spec.sensors]
    for i, s in enumerate(spec.sensors):
        if s.pin in pins[:i]:
            r.problems.add((*r.path, "sensor", i, "pin"), f"pin {s.pin} is used by an earlier sensor")
        if s.channel in channels[:i]:
            r.problems.add((*r.path, "sensor", i, "channel"),
                           f"channel {s.channel} is used by an earlier sensor")
    r.reject_unknown()
    return spec


def _sensor(r: _Reader, start: int, replays: Mapping[str, Series]) -> SensorSpec:
    channel_value = r.value("channel")
    channel = 0
    if isinstance(channel_value, str):
        channel = NUMBERS.get(channel_value, 0)
        if not channel:
            r.problem("channel", f"{channel_value!r} is not in the channel catalogue")
    elif isinstance(channel_value, int) and 1 <= channel_value <= 255:
        channel = channel_value
    elif channel_value is not None:
        r.problem("channel", f"must be a catalogue name or 1-255, not {channel_value!r}")
    kind = r.choice("kind", SENSOR_KINDS, "analog")
    exponent = r.integer("exponent", 0, -20, 20)
    full_scale = r.optional_integer("full_scale", 1)
    scale_num = r.optional_integer("scale_num", 1)
    scale_den = r.optional_integer("scale_den", 1)
    if full_scale is not None and (scale_num is not None or scale_den is not None):
        r.problem("full_scale", "give full_scale or scale_num/scale_den, not both")
    if full_scale is not None:
        scale_num, scale_den = full_scale, 65535
    source = r.text("source")
    environment_source = source in Environment.QUANTITIES
    if source and source.startswith("replay:"):
        if source[7:] not in replays:
            r.problem("source", f"no [[replay]] is named {source[7:]!r}")
    elif source and not environment_source:
        r.problem("source", f"must be one of {', '.join(Environment.QUANTITIES)} or "
                            f"\"replay:<name>\", not {source!r}")
    spec = SensorSpec(channel=channel, kind=kind, pin=r.integer("pin", low=0, high=255),
                      interval_s=r.integer("interval_s", 900, 1, 86400), exponent=exponent,
                      scale_num=scale_num or 1, scale_den=scale_den or 1,
                      offset=r.integer("offset", 0), source=source or "",
                      dropouts=tuple(_window(w, start) for w in r.tables("dropout")))
    r.reject_unknown()
    return spec


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
