"""What the hydrologists' subcommands share on the command line: where the data is (an ingest
config or a URL), the station registry, the time range (or a water year) and the clock times
are shown on."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .registry import Basin, Registry, registry_for
from .timearg import unix_time
from .windows import water_year


@dataclass(frozen=True, slots=True)
class Source:
    url: str
    database: str
    retention_policy: str
    username: str
    password: str
    registry: Registry


def add_source_args(p: argparse.ArgumentParser, rp: bool = True) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", "-c", type=Path, help="ingest TOML config (InfluxDB address)")
    where.add_argument("--url", help="InfluxDB URL, e.g. http://127.0.0.1:8086")
    p.add_argument("--db", default="watershed", help="database (with --url; default watershed)")
    if rp:
        p.add_argument("--rp", default="", help="retention policy: 'hourly' reads the hourly "
                                                "rollups (default: the database's default, raw "
                                                "readings)")
    p.add_argument("--user", default="", help="InfluxDB user (with --url; default none)")
    p.add_argument("--password", default="",
                   help="InfluxDB password (with --url); any user of the machine sees a command "
                        "line: prefer --password-file or $WATERSHED_INFLUX_PASSWORD")
    p.add_argument("--password-file", type=Path, metavar="FILE",
                   help="a file holding the InfluxDB password (with --url)")
    p.add_argument("--registry", type=Path,
                   help="station metadata registry (default: stations.toml beside --config, "
                        "if there is one)")


def add_range_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", type=unix_time, help="first time, Unix s or ISO 8601 (UTC "
                                                   "unless it says otherwise)")
    p.add_argument("--end", type=unix_time, help="end time, exclusive (default now)")
    p.add_argument("--water-year", type=int, metavar="YEAR",
                   help="instead of --start/--end: the hydrological year ending in YEAR, in the "
                        "basin's time zone and start month from the registry (default UTC, "
                        "October)")


def add_tz_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tz", default="UTC",
                   help="clock for times and calendar windows: UTC, 'local' (each station's "
                        "basin time zone from the registry) or an IANA name such as "
                        "America/Guayaquil (default UTC)")


def source(args: argparse.Namespace) -> Source:
    """Raises ConfigError (a ValueError)."""
    from ..ingest.config import load_config
    rp = getattr(args, "rp", "")
    if args.config:
        config = load_config(args.config)
        i = config.influx
        return Source(i.url, i.database, rp or i.retention_policy, i.username, i.password,
                      registry_for(args.registry, args.config, config.ingest.registry))
    registry = registry_for(args.registry, None)
    password = (args.password
                or (read_secret(args.password_file, "--password-file") if args.password_file
                    else os.environ.get("WATERSHED_INFLUX_PASSWORD", "") if args.user else ""))
    return Source(args.url, args.db, rp, args.user, password, registry)


def read_secret(path: Path, option: str) -> str:
    """A password from a file of its own (one trailing newline dropped); raises ConfigError
    naming the option and the file, never the content."""
    from ..ingest.config import ConfigError
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{option}: cannot read {path}: "
                          f"{getattr(e, 'strerror', None) or 'not UTF-8 text'}") from e
    if not value:
        raise ConfigError(f"{option}: {path} is empty")
    return value


def time_range(args: argparse.Namespace, registry: Registry, stations: list[str],
               basins: list[str] | None = None) -> tuple[int, int]:
    """[start, end) from --start/--end or --water-year (the basin of the first station, else
    the first basin; UTC and October when the registry does not say); raises ValueError."""
    if args.water_year is not None:
        if args.start is not None or args.end is not None:
            raise ValueError("--water-year replaces --start and --end: give one or the other")
        basin = first_basin(registry, stations, basins or [])
        if basin is None:
            return water_year(args.water_year)
        return water_year(args.water_year, basin.water_year_start_month, basin.zone)
    if args.start is None:
        raise ValueError("--start (or --water-year) is required")
    end = args.end if args.end is not None else int(time.time()) + 1
    if end <= args.start:
        raise ValueError(f"--end ({end}) must be after --start ({args.start})")
    return args.start, end


def first_basin(registry: Registry, stations: list[str], basins: list[str]) -> Basin | None:
    if stations and registry.basin_of(stations[0]).id in registry.basins:
        return registry.basin_of(stations[0])
    return registry.basins.get(basins[0]) if basins else None


def zone_of(tz: str, registry: Registry) -> Callable[[str], tzinfo]:
    """station -> the clock its times are shown on; raises ValueError for an unknown zone."""
    if tz.upper() == "UTC":
        return lambda _station: timezone.utc
    if tz == "local":
        return lambda station: registry.basin_of(station).zone if registry.basin_of(
            station).id else timezone.utc
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"--tz: unknown time zone {tz!r}; UTC, local or an IANA name "
                         f"such as America/Guayaquil") from None
    return lambda _station: zone
