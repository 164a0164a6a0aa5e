"""The ingest service's TOML config, read into frozen dataclasses and checked up front.

Every key has a default except the ones a v2 InfluxDB cannot work without. Unknown keys are
errors, so a typo (``batchsize``) fails at start instead of silently running on a default.
A ``ConfigError`` lists every problem, each with file, line and key
(``ingest.toml:21: influx.batch_size: ...``), and says what it should be.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config_reader import ConfigError, Table, load_toml, of_mapping
from ..contracts.ids import is_valid_id
from ..mqtt.config import MqttConfig, read_mqtt
from ..hydro.registry import Registry, registry_key

__all__ = ["ConfigError", "IngestConfig", "InfluxConfig", "IngestSection", "MqttConfig",
           "RetentionConfig", "StationEntry", "ValidationConfig", "load_config"]

INFLUX_APIS = ("v1", "v2")


@dataclass(frozen=True, slots=True)
class IngestSection:
    id: str = "ingest-1"  # also the MQTT client id and the dead-letter source
    group: str = "ingest"  # shared-subscription group: instances of one group split the stream
    deadletter_file: str = "/var/lib/watershed/deadletter.jsonl"
    # Which gateway owns each station (owners.py); default: owners.jsonl beside deadletter_file
    owners_file: str = ""
    status_interval_s: float = 10.0  # retained status on <prefix>/v1/ingest/<id>/status
    log_interval_s: float = 60.0  # the same numbers as a log line
    metrics_port: int = 0  # Prometheus metrics on 127.0.0.1:PORT (0: none; metrics_http.py)
    # The station registry (hydro/registry.py): each station's owners once, for every program
    registry: str = ""

    @property
    def owners_path(self) -> Path:
        return Path(self.owners_file or Path(self.deadletter_file).parent / "owners.jsonl")


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
    # With a station registry: reject stations it does not list. Otherwise a station not listed
    # (or listed without gateways) is owned by the first gateway it is heard from (owners.py).
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
    gateways: tuple[str, ...] = ()  # its owners; empty: the owners file decides (owners.py)
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
    def from_dict(cls, d: Mapping[str, Any], base_dir: Path | None = None) -> IngestConfig:
        """Build and validate from parsed TOML; raises ConfigError listing every problem.
        Relative rating paths are taken from ``base_dir`` (the config file's folder)."""
        return cls.from_table(of_mapping(d), base_dir)

    @classmethod
    def from_table(cls, root: Table, base_dir: Path | None = None) -> IngestConfig:
        """Read the root table of a document; raises ConfigError listing every problem."""
        ingest_table = root.table("ingest")
        ingest = _ingest(ingest_table)
        registry = registry_key(ingest_table, base_dir)
        if ingest.registry and base_dir is not None:  # as the hydrologists' commands find it
            ingest = replace(ingest, registry=str(base_dir / ingest.registry))
        config = cls(ingest=ingest,
                     mqtt=_mqtt(root.table("mqtt"), ingest.id),
                     influx=_influx(root.table("influx")),
                     validation=_validation(root.table("validation")),
                     retention=_retention(root.table("retention")),
                     ranges=_ranges(root.table("ranges")),
                     stations=_stations(root.tables("stations"), base_dir or Path.cwd(),
                                        registry))
        root.reject_unknown()
        root.check()
        return config

    def station(self, station_id: str) -> StationEntry | None:
        for entry in self.stations:
            if entry.id == station_id:
                return entry
        return None


def load_config(path: str | Path) -> IngestConfig:
    """Read and validate a TOML file; raises ConfigError listing every problem as
    ``file:line: key: message``."""
    return IngestConfig.from_table(load_toml(path), Path(path).resolve().parent)


# --- sections -----------------------------------------------------------------------------
# Each reads its table with the defaults of its dataclass (an instance: slots hide the class's).


def _ingest(t: Table) -> IngestSection:
    # The id and group become topic levels and the client id.
    d = IngestSection()
    deadletter_file = t.text("deadletter_file", d.deadletter_file)
    section = IngestSection(id=t.ident("id", d.id), group=t.ident("group", d.group),
                            deadletter_file=deadletter_file,
                            owners_file=t.text("owners_file", d.owners_file,
                                               allow_empty=True),
                            status_interval_s=_positive(t, "status_interval_s",
                                                        d.status_interval_s),
                            log_interval_s=_positive(t, "log_interval_s", d.log_interval_s),
                            metrics_port=t.integer("metrics_port", 0, 0, 65535),
                            registry=t.text("registry", "", allow_empty=True))
    t.reject_unknown()
    return section


def _mqtt(t: Table, ingest_id: str) -> MqttConfig:
    # The prefix is one topic level: contracts.mqtt.Topics parses topics as
    # <prefix>/v1/<gateway>/<station>/readings. The keepalive is the service's (KEEPALIVE_S).
    config = read_mqtt(t, t.ident("prefix", MqttConfig().prefix), ingest_id, "ingest.id")
    t.reject_unknown()
    return config


def _influx(t: Table) -> InfluxConfig:
    d = InfluxConfig()
    api = t.choice("api", INFLUX_APIS, d.api)

    def for_v2(key: str) -> str:
        value = t.text(key, "", allow_empty=True)
        if api == "v2" and t.data.get(key, "") == "":  # (another type is reported already)
            t.problem(key, 'required (not empty) with api = "v2"')
        return value

    def token() -> str:
        value = t.secret("token")
        if api == "v2" and not any(t.given(k) for k in ("token", "token_file", "token_env")):
            t.problem("token", 'required with api = "v2" (or token_file, token_env)')
        elif api == "v2" and t.data.get("token") == "":
            t.problem("token", 'required (not empty) with api = "v2"')
        return value

    url = t.text("url", d.url)
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        # Never echoed: it holds a secret. URLs end up in error messages and logs.
        t.problem("url", "holds credentials (user:password@): give them as influx.username "
                         "and password_file instead")
    elif url and not (parts.scheme in ("http", "https") and parts.hostname):
        t.problem("url", f"expected an http:// or https:// URL, got {url!r}")
    config = InfluxConfig(
        api=api, url=url,
        database=t.text("database", d.database, allow_empty=api == "v2"),
        retention_policy=t.text("retention_policy", d.retention_policy, allow_empty=True),
        username=t.text("username", d.username, allow_empty=True),
        password=t.secret("password"),
        org=for_v2("org"), bucket=for_v2("bucket"), token=token(),
        batch_size=t.integer("batch_size", d.batch_size, low=1),
        flush_interval_s=_positive(t, "flush_interval_s", d.flush_interval_s),
        timeout_s=_positive(t, "timeout_s", d.timeout_s),
        parallel_writes=t.integer("parallel_writes", d.parallel_writes, 1, 16))
    t.reject_unknown()
    return config


def _validation(t: Table) -> ValidationConfig:
    d = ValidationConfig()
    config = ValidationConfig(max_future_s=t.integer("max_future_s", d.max_future_s, low=0),
                              max_past_s=t.integer("max_past_s", d.max_past_s, low=0),
                              require_registered=t.boolean("require_registered",
                                                           d.require_registered))
    t.reject_unknown()
    return config


def _retention(t: Table) -> RetentionConfig:
    d = RetentionConfig()
    config = RetentionConfig(raw=_duration(t, "raw", d.raw),
                             hourly=_duration(t, "hourly", d.hourly),
                             resample_for=_duration(t, "resample_for", d.resample_for,
                                                    infinite=False),
                             sum_channels=t.idents("sum_channels", d.sum_channels))
    t.reject_unknown()
    return config


def _ranges(t: Table) -> tuple[tuple[str, float, float], ...]:
    out = []
    for channel in t.data:  # every key is a channel
        bounds = t.value(channel)
        if not (is_valid_id(channel) and isinstance(bounds, list) and len(bounds) == 2
                and all(type(b) in (int, float) and math.isfinite(b) for b in bounds)
                and bounds[0] <= bounds[1]):
            t.problem(channel, f"expected [low, high] for a channel name, got {bounds!r}")
            continue
        out.append((channel, float(bounds[0]), float(bounds[1])))
    return tuple(out)


def _stations(tables: list[Table], base_dir: Path,
              registry: Registry | None) -> tuple[StationEntry, ...]:
    """The [[stations]]; with a registry, a station's owners come from it (a ``gateways`` here
    must agree) and every station it lists is registered, with or without a table here."""
    out: list[StationEntry] = []
    for t in tables:
        entry = StationEntry(id=t.ident("id"), gateways=t.idents("gateways"),
                             ratings=tuple(base_dir / r for r in t.texts("ratings")),
                             stage_channel=t.ident("stage_channel", "stage_m"))
        if entry.id and any(e.id == entry.id for e in out):
            t.problem("id", f"{entry.id!r} is listed by an earlier [[stations]]")
        if registry is not None and entry.id:
            info = registry.station(entry.id)
            if info is None:
                t.problem("id", f"{entry.id!r} is not in the station registry "
                                f"(ingest.registry); known: {', '.join(registry.stations)}")
            elif entry.gateways and info.gateways and entry.gateways != info.gateways:
                t.problem("gateways", f"{list(entry.gateways)} differs from the registry's "
                                      f"{list(info.gateways)}: name the owners once, there")
            elif not entry.gateways:
                entry = replace(entry, gateways=info.gateways)
        t.reject_unknown()
        out.append(entry)
    if registry is not None:
        out += [StationEntry(info.id, info.gateways) for info in registry.stations.values()
                if not any(e.id == info.id for e in out)]
    return tuple(out)


def _positive(t: Table, key: str, default: float) -> float:
    value = t.number(key, default)
    if value <= 0:
        t.problem(key, f"expected a positive number, got {value:g}")
    return value


# InfluxQL duration literals: INF, or units such as 52w, 30d, 1h30m
_DURATION = re.compile(r"INF|(?:[0-9]+(?:ns|u|µ|ms|s|m|h|d|w))+")


def _duration(t: Table, key: str, default: str, infinite: bool = True) -> str:
    value = t.text(key, default)
    if value and not (_DURATION.fullmatch(value) and (infinite or value != "INF")):
        what = ("INF or an InfluxQL duration such as 520w, 30d, 12h" if infinite
                else "an InfluxQL duration such as 2d")
        t.problem(key, f"expected {what}, got {value!r}")
    return value
