"""The ingest service's TOML config, read into frozen dataclasses and checked up front.

Every key has a default except the ones a v2 InfluxDB cannot work without. Unknown keys are
errors, so a typo (``batchsize``) fails at start instead of silently running on a default.
A ``ConfigError`` names the key (``influx.batch_size``) and says what it should be.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..contracts.ids import is_valid_id
from ..contracts.mqtt import DEFAULT_PREFIX

INFLUX_APIS = ("v1", "v2")


class ConfigError(ValueError):
    """A config that cannot run; the message starts with the offending key."""


@dataclass(frozen=True, slots=True)
class IngestSection:
    id: str = "ingest-1"  # also the MQTT client id and the dead-letter source
    group: str = "ingest"  # shared-subscription group: instances of one group split the stream
    deadletter_file: str = "/var/lib/watershed/deadletter.jsonl"
    status_interval_s: float = 10.0  # retained status on <prefix>/v1/ingest/<id>/status
    log_interval_s: float = 60.0  # the same numbers as a log line


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = DEFAULT_PREFIX
    username: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    api: str = "v1"
    url: str = "http://127.0.0.1:8086"
    # v1 (/write)
    database: str = "watershed"
    retention_policy: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    # v2 (/api/v2/write)
    org: str = ""
    bucket: str = ""
    token: str = field(default="", repr=False)
    # batching and HTTP
    batch_size: int = 5000  # lines per write; InfluxDB's own guidance
    flush_interval_s: float = 1.0
    timeout_s: float = 10.0
    # Batches written side by side, each on its own connection: InfluxDB works on two at once
    # on its cores while the ingest converts; acks still go out in arrival order.
    parallel_writes: int = 2


@dataclass(frozen=True, slots=True)
class ValidationConfig:
    # A reading further ahead of our clock than this is a station clock gone wrong. 0 = no
    # limit, the default because the simulated demo runs its stations' clocks ahead of ours;
    # deploy/ingest/ingest.toml sets 3600.
    max_future_s: int = 0
    # Older than this is rejected too; 0 = no limit (a station may backfill after months away).
    max_past_s: int = 0
    # With a station registry: reject stations it does not list (otherwise only ownership of
    # the listed ones is checked).
    require_registered: bool = False


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """What `watershed influx setup` creates: how long data is kept, and the hourly rollups."""
    raw: str = "INF"  # raw readings: forever unless an InfluxQL duration (520w) says otherwise
    hourly: str = "INF"  # the hourly rollups (retention policy "hourly", measurement
    # readings_hourly)
    # Each hourly run recomputes this much of the past, so readings a gateway delivers late
    # (after an outage) still reach the rollups; older backfills: `watershed influx downsample`.
    resample_for: str = "2d"
    sum_channels: tuple[str, ...] = ("rain_mm",)  # rolled up by sum; the others by mean/min/max


@dataclass(frozen=True, slots=True)
class StationEntry:
    """One station of the registry: who may publish for it and which ratings derive discharge."""
    id: str
    gateways: tuple[str, ...] = ()  # empty: any gateway
    ratings: tuple[Path, ...] = ()  # rating files (USGS RDB or TOML), relative to the config
    stage_channel: str = "stage_m"


@dataclass(frozen=True, slots=True)
class IngestConfig:
    ingest: IngestSection = IngestSection()
    mqtt: MqttConfig = MqttConfig()
    influx: InfluxConfig = InfluxConfig()
    validation: ValidationConfig = ValidationConfig()
    retention: RetentionConfig = RetentionConfig()
    # channel -> (low, high): a value outside is stored with the out_of_range flag added
    ranges: tuple[tuple[str, float, float], ...] = ()
    stations: tuple[StationEntry, ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any], base_dir: Path | None = None) -> IngestConfig:
        """Build and validate from parsed TOML; raises ConfigError naming the key. Relative
        rating paths are taken from ``base_dir`` (the config file's folder)."""
        _check_keys("", d, {f.name for f in fields(cls)})
        config = cls(ingest=_section(IngestSection, "ingest", d.get("ingest", {})),
                     mqtt=_section(MqttConfig, "mqtt", d.get("mqtt", {})),
                     influx=_section(InfluxConfig, "influx", d.get("influx", {})),
                     validation=_section(ValidationConfig, "validation",
                                         d.get("validation", {})),
                     retention=_section(RetentionConfig, "retention", d.get("retention", {})),
                     ranges=_ranges(d.get("ranges", {})),
                     stations=_stations(d.get("stations", []), base_dir or Path.cwd()))
        _validate(config)
        return config

    def station(self, station_id: str) -> StationEntry | None:
        for entry in self.stations:
            if entry.id == station_id:
                return entry
        return None


def _ranges(d: object) -> tuple[tuple[str, float, float], ...]:
    if not isinstance(d, dict):
        raise ConfigError("ranges: expected a table of channel = [low, high]")
    out = []
    for channel, bounds in d.items():
        ok = (is_valid_id(channel) and isinstance(bounds, list) and len(bounds) == 2
              and all(type(b) in (int, float) for b in bounds) and bounds[0] <= bounds[1])
        _require(f"ranges.{channel}", ok, "[low, high] for a channel name", bounds)
        out.append((channel, float(bounds[0]), float(bounds[1])))
    return tuple(out)


def _stations(items: object, base_dir: Path) -> tuple[StationEntry, ...]:
    _require("stations", isinstance(items, list), "an array of tables [[stations]]", items)
    assert isinstance(items, list)
    out: list[StationEntry] = []
    for n, d in enumerate(items):
        where = f"stations[{n}]"
        _check_keys(where, d, {"id", "gateways", "ratings", "stage_channel"})
        station_id = d.get("id")
        _require(f"{where}.id", isinstance(station_id, str) and is_valid_id(station_id),
                 "a station identifier", station_id)
        _require(f"{where}.id", all(e.id != station_id for e in out), "no duplicate",
                 station_id)
        gateways = d.get("gateways", [])
        _require(f"{where}.gateways", isinstance(gateways, list)
                 and all(isinstance(g, str) and is_valid_id(g) for g in gateways),
                 "a list of gateway identifiers", gateways)
        ratings = d.get("ratings", [])
        _require(f"{where}.ratings", isinstance(ratings, list)
                 and all(isinstance(r, str) and r for r in ratings),
                 "a list of rating file paths", ratings)
        stage_channel = d.get("stage_channel", "stage_m")
        _require(f"{where}.stage_channel", isinstance(stage_channel, str)
                 and is_valid_id(stage_channel), "a channel name", stage_channel)
        out.append(StationEntry(station_id, tuple(gateways),
                                tuple(base_dir / r for r in ratings), stage_channel))
    return tuple(out)


def load_config(path: str | Path) -> IngestConfig:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    return IngestConfig.from_dict(data, Path(path).resolve().parent)


S = TypeVar("S")


def _check_keys(where: str, d: object, known: set[str]) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a table")
    for key in d:
        if key not in known:
            raise ConfigError(f"{where + '.' if where else ''}{key}: unknown key "
                              f"(known: {', '.join(sorted(known))})")


def _section(cls: type[S], name: str, d: object) -> S:
    """The dataclass of one table; values must have the default's type (int also for float)."""
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    _check_keys(name, d, set(known))
    assert isinstance(d, dict)
    values = dict(d)
    for key, value in d.items():
        expected = type(known[key].default)
        ok = (type(value) is expected
              or (expected is float and type(value) is int))  # `timeout_s = 10` is fine
        if expected is tuple:  # a list of strings in TOML
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            values[key] = tuple(value) if ok else value
        if not ok:
            raise ConfigError(f"{name}.{key}: expected {_TYPE_NAMES[expected]}, got {value!r}")
    return cls(**values)


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               tuple: "a list of strings"}

# InfluxQL duration literals: INF, or units such as 52w, 30d, 1h30m
_DURATION = re.compile(r"INF|(?:[0-9]+(?:ns|u|µ|ms|s|m|h|d|w))+")


def _require(key: str, ok: bool, what: str, value: object) -> None:
    if not ok:
        raise ConfigError(f"{key}: expected {what}, got {value!r}")


def _validate(c: IngestConfig) -> None:
    # The id and group become topic levels and the client id; the prefix must be one topic level
    # because contracts.mqtt.Topics parses topics as <prefix>/v1/<gateway>/<station>/readings.
    for key, value in (("ingest.id", c.ingest.id), ("ingest.group", c.ingest.group),
                       ("mqtt.prefix", c.mqtt.prefix)):
        _require(key, is_valid_id(value), "an identifier (1-32 of A-Z a-z 0-9 _ . -)", value)
    _require("ingest.deadletter_file", bool(c.ingest.deadletter_file), "a file path",
             c.ingest.deadletter_file)
    for key in ("status_interval_s", "log_interval_s"):
        _require(f"ingest.{key}", getattr(c.ingest, key) > 0, "a positive number",
                 getattr(c.ingest, key))
    _require("mqtt.host", bool(c.mqtt.host), "a host name", c.mqtt.host)
    _require("mqtt.port", 1 <= c.mqtt.port <= 65535, "a port 1-65535", c.mqtt.port)
    _require("mqtt.password", not c.mqtt.password or bool(c.mqtt.username),
             "to be empty when mqtt.username is", "<hidden>")

    v = c.validation
    _require("validation.max_future_s", v.max_future_s >= 0, "0 or more seconds",
             v.max_future_s)
    _require("validation.max_past_s", v.max_past_s >= 0, "0 (no limit) or more seconds",
             v.max_past_s)

    r = c.retention
    for key in ("raw", "hourly", "resample_for"):
        value = getattr(r, key)
        _require(f"retention.{key}", bool(_DURATION.fullmatch(value))
                 and (key != "resample_for" or value != "INF"),
                 "INF or an InfluxQL duration such as 520w, 30d, 12h"
                 if key != "resample_for" else "an InfluxQL duration such as 2d", value)
    _require("retention.sum_channels", all(is_valid_id(ch) for ch in r.sum_channels),
             "a list of channel names", list(r.sum_channels))

    i = c.influx
    _require("influx.api", i.api in INFLUX_APIS, " or ".join(INFLUX_APIS), i.api)
    url = urlsplit(i.url)
    _require("influx.url", url.scheme in ("http", "https") and bool(url.hostname),
             "an http:// or https:// URL", i.url)
    _require("influx.batch_size", i.batch_size >= 1, "a positive integer", i.batch_size)
    _require("influx.flush_interval_s", i.flush_interval_s > 0, "a positive number",
             i.flush_interval_s)
    _require("influx.timeout_s", i.timeout_s > 0, "a positive number", i.timeout_s)
    _require("influx.parallel_writes", 1 <= i.parallel_writes <= 16, "an integer from 1 to 16",
             i.parallel_writes)
    if i.api == "v1":
        _require("influx.database", bool(i.database), "a database name", i.database)
    else:
        for key in ("org", "bucket", "token"):
            value = getattr(i, key)
            _require(f"influx.{key}", bool(value), "a non-empty string for api = \"v2\"",
                     "<hidden>" if key == "token" else value)
