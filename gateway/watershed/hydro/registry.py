"""The station metadata registry: one TOML file (``deploy/stations.toml``) that says where each
station is and what it samples, for the hydrologists' tools (export metadata, local time,
hydrological years, the audit's expected slots) and, once for all, which basin a station is in
and which gateways own it. The gateway's and the ingest's configs point to it with
``registry = "/etc/watershed/stations.toml"`` (``registry_key``): a gateway's ``[[station]]``
then takes its basin from here (and must be one of the station's ``gateways``, when given), an
ingest's ``[[stations]]`` its owners, and the ingest registers every station listed here.

    [[basin]]
    id = "santiago"
    timezone = "America/Guayaquil"     # IANA name: the basin's local time
    water_year_start_month = 10        # the hydrological year begins on the 1st of this month

    [[station]]
    id = "SAN-01"
    name = "Río Zamora en San Francisco"
    basin = "santiago"
    latitude = -3.9702                  # decimal degrees, horizontal_datum
    longitude = -79.0725
    horizontal_datum = "WGS84"
    gauge_datum_m = 1812.45             # elevation of the gauge's zero, vertical_datum
    vertical_datum = "EGM96"
    sensor_elevation_m = 1812.20        # elevation of the pressure sensor / radar face
    channels = { stage_m = 900, water_temp_c = 900, battery_v = 3600 }   # sampling interval, s
    gateways = ["gw-zamora"]            # who may publish its readings (the ingest's owners)

Unknown keys are refused, with file and line, like every config of the project.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..config_reader import ConfigError, Table, load_toml


@dataclass(frozen=True, slots=True)
class Basin:
    id: str
    timezone: str = "UTC"
    water_year_start_month: int = 10

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class StationInfo:
    id: str
    basin: str
    name: str = ""
    latitude: float | None = None
    longitude: float | None = None
    horizontal_datum: str = "WGS84"
    gauge_datum_m: float | None = None
    vertical_datum: str = ""
    sensor_elevation_m: float | None = None
    channels: dict[str, int] = field(default_factory=dict)  # channel -> sampling interval, s
    gateways: tuple[str, ...] = ()  # its owners (ingest); empty: the ingest decides


@dataclass(frozen=True, slots=True)
class Registry:
    basins: dict[str, Basin] = field(default_factory=dict)
    stations: dict[str, StationInfo] = field(default_factory=dict)

    def station(self, station_id: str) -> StationInfo | None:
        return self.stations.get(station_id)

    def basin_of(self, station_id: str) -> Basin:
        """The station's basin (UTC, October water year when the registry does not say)."""
        info = self.stations.get(station_id)
        basin = self.basins.get(info.basin) if info else None
        return basin or Basin(info.basin if info else "")


EMPTY = Registry()


def load_registry(path: str | Path) -> Registry:
    """Read and check the file; raises ConfigError listing every problem."""
    root = load_toml(path)
    basins: dict[str, Basin] = {}
    for t in root.tables("basin"):
        basin = Basin(t.ident("id"), t.text("timezone", "UTC"),
                      t.integer("water_year_start_month", 10, low=1, high=12))
        try:
            ZoneInfo(basin.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            t.problem("timezone", f"unknown time zone {basin.timezone!r} (an IANA name such "
                                  f"as America/Guayaquil)")
        if basin.id in basins:
            t.problem("id", f"basin {basin.id!r} is listed twice")
        t.reject_unknown()
        basins[basin.id] = basin
    stations: dict[str, StationInfo] = {}
    for t in root.tables("station"):
        info = StationInfo(
            t.ident("id"), t.ident("basin"), t.text("name", "", allow_empty=True),
            t.optional_number("latitude", -90, 90), t.optional_number("longitude", -180, 180),
            t.text("horizontal_datum", "WGS84"), t.optional_number("gauge_datum_m"),
            t.text("vertical_datum", "", allow_empty=True),
            t.optional_number("sensor_elevation_m"), _intervals(t.table("channels")),
            t.idents("gateways"))
        if info.id in stations:
            t.problem("id", f"station {info.id!r} is listed twice")
        if basins and info.basin and info.basin not in basins:
            t.problem("basin", f"{info.basin!r} is not a [[basin]] of this file")
        t.reject_unknown()
        stations[info.id] = info
    root.reject_unknown()
    root.check()
    return Registry(basins, stations)


def _intervals(t: Table) -> dict[str, int]:
    return {channel: t.integer(channel, low=1, high=86400) for channel in t.data}


def registry_key(t: Table, base_dir: Path | None, key: str = "registry") -> Registry | None:
    """The registry a config's ``key`` names (a relative path: from ``base_dir``, the config's
    folder), or None when it names none. A registry that cannot be used is one problem on the
    key, quoting each of the registry's own ``file:line`` problems."""
    name = t.text(key, "", allow_empty=True)
    if not name:
        return None
    path = Path(name)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        return load_registry(path)
    except ConfigError as e:
        t.problem(key, "the station registry cannot be used: " + "; ".join(e.problems))
        return None


def registry_for(explicit: Path | None, config: Path | None, named: str = "") -> Registry:
    """``--registry`` if given, else the one the ``--config`` file names (``named``: its
    ``registry`` key, resolved), else ``stations.toml`` beside it if there is one, else an
    empty registry (UTC, no metadata). Raises ConfigError."""
    if explicit is not None:
        return load_registry(explicit)
    if named:
        return load_registry(named)
    if config is not None and (config.parent / "stations.toml").is_file():
        return load_registry(config.parent / "stations.toml")
    return EMPTY


__all__ = ["Basin", "ConfigError", "Registry", "StationInfo", "load_registry", "registry_for",
           "registry_key"]
