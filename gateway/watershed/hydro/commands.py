"""Hydrologists' and ingest operators' subcommands of ``watershed``: rating, recompute, influx
(database setup, rollup backfill) and query."""

from __future__ import annotations

import argparse
import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .cli_common import (add_range_args, add_source_args, add_tz_arg, first_basin,
                         read_secret, source, time_range, zone_of)
from . import record_commands
from .timearg import unix_time


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add this area's subcommands to the ``watershed`` parser."""
    p = sub.add_parser("rating", help="stage-discharge ratings: expanded table, discharge",
                       description="Read a rating (USGS RDB base or exsa, or TOML segments).")
    rating = p.add_subparsers(dest="rating_command", required=True, metavar="ACTION")
    t = rating.add_parser("table", help="print the expanded table in the USGS exsa layout")
    t.add_argument("rating", type=Path, help="rating file (.rdb/.txt USGS RDB, or .toml)")
    t.add_argument("--step", type=_decimal, default=Decimal("0.01"),
                   help="gage-height step (default 0.01)")
    t.add_argument("--at", type=unix_time, help="apply the shift in force at this time")
    t.set_defaults(func=_rating_table)
    d = rating.add_parser("discharge", help="discharge for one or more gage heights")
    d.add_argument("rating", type=Path, help="rating file")
    d.add_argument("stages", type=_decimal, nargs="+", metavar="STAGE",
                   help="gage height in the rating's unit")
    d.add_argument("--at", type=unix_time, help="apply the shift in force at this time")
    d.set_defaults(func=_rating_discharge)

    r = sub.add_parser("recompute", help="re-derive discharge from stored stage after a "
                                         "rating change",
                       description="Read a station's stage points back from InfluxDB and write "
                                   "discharge through the ratings now in the ingest config.")
    r.add_argument("--config", "-c", type=Path, required=True, help="ingest TOML config file")
    r.add_argument("--station", required=True)
    r.add_argument("--start", type=unix_time, required=True,
                   help="first time (Unix s or ISO 8601)")
    r.add_argument("--end", type=unix_time, required=True, help="end time, exclusive")
    r.set_defaults(func=_recompute)

    p = sub.add_parser("influx", help="InfluxDB database setup: retention, hourly rollups")
    influx = p.add_subparsers(dest="influx_command", required=True, metavar="ACTION")
    s = influx.add_parser("setup", help="create the database, retention policies and "
                                        "continuous queries (1.x); idempotent",
                          description="Bring the InfluxDB 1.x database to the ingest config: "
                                      "database, retention policies ([retention]) and the "
                                      "hourly rollup continuous queries. Changes only what "
                                      "differs. For 2.x see deploy/influxdb/README.md.")
    s.add_argument("--config", "-c", type=Path, required=True, help="ingest TOML config file")
    s.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    s.add_argument("--admin-user", metavar="NAME",
                   help="run as this admin (auth on): also make the ingest's user "
                        "(influx.username, password from the config) WRITE only; its password "
                        "from --admin-password-file or $WATERSHED_INFLUX_ADMIN_PASSWORD")
    s.add_argument("--admin-password-file", type=Path, metavar="FILE")
    s.add_argument("--reader", action="append", default=[], metavar="NAME",
                   help="a READ-only user (hydrologists, Grafana), with --admin-user; repeatable")
    s.add_argument("--reader-password-file", type=Path, metavar="FILE",
                   help="the password of a --reader to create (an existing one keeps its own)")
    s.set_defaults(func=_influx_setup)
    b = influx.add_parser("downsample", help="run the hourly rollups once over a time range",
                          description="For backfills older than retention.resample_for, which "
                                      "the continuous queries no longer revisit.")
    b.add_argument("--config", "-c", type=Path, required=True, help="ingest TOML config file")
    b.add_argument("--start", type=unix_time, required=True, help="Unix s or ISO 8601")
    b.add_argument("--end", type=unix_time, required=True, help="end time, exclusive")
    b.set_defaults(func=_influx_downsample)

    q = sub.add_parser("query", help="readings for hydrologists: raw or per time window",
                       description="Query readings by station, basin, channel and time range "
                                   "through InfluxQL /query; values print exactly as stored. "
                                   "A station, basin or channel the database does not hold is "
                                   "an error that lists the ones it does.")
    add_source_args(q)
    q.add_argument("--station", action="append", default=[], help="station id (repeatable; "
                                                                   "default all)")
    q.add_argument("--basin", action="append", default=[], help="basin (repeatable; default all)")
    q.add_argument("--channel", action="append", default=[],
                   help="channel (repeatable; default all)")
    add_range_args(q)
    add_tz_arg(q)
    q.add_argument("--every", help="aggregation window, starting at --start: a duration (15m, "
                                   "1h, 1d, 1w) or day, month, water-year (calendar, on the "
                                   "--tz clock) (default: raw readings)")
    q.add_argument("--agg", choices=("mean", "min", "max", "sum"),
                   help="aggregate per window (default: sum for totals such as rain_mm, mean "
                        "for the other channels)")
    q.add_argument("--clean", action="store_true",
                   help="only values without a quality flag (flags 0 or the event bit only); "
                        "raw readings are judged on their corrected flags, windows on the "
                        "stored ones")
    q.add_argument("--columns", default="",
                   help="extra columns of raw readings, comma-separated: seq, rating_id, "
                        "gateway, flag_names (default none)")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="output (default table)")
    q.set_defaults(func=_query)
    record_commands.register(sub)


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _fail(command: str, error: object, status: int) -> int:
    """Say why ``watershed COMMAND`` failed, on stderr; the exit status (2 usage, 1 runtime)."""
    print(f"watershed {command}: {error}", file=sys.stderr)
    return status


def _rating_table(args: argparse.Namespace) -> int:
    from ..ratings.load import load_rating
    from ..ratings.model import RatingError
    from ..ratings.table import format_exsa
    try:
        sys.stdout.write(format_exsa(load_rating(args.rating), args.step, args.at))
    except (RatingError, ValueError) as e:
        return _fail("rating", e, 2)
    return 0


def _rating_discharge(args: argparse.Namespace) -> int:
    from ..ratings.load import load_rating
    from ..ratings.model import RatingError
    try:
        rating = load_rating(args.rating)
    except RatingError as e:
        return _fail("rating", e, 2)
    print(f"# rating {rating.rating_id}: stage {rating.stage_unit}, "
          f"discharge {rating.discharge_unit}")
    print("stage\tshift\tdischarge\tflag")
    for stage in args.stages:
        result = rating.discharge(stage, at=args.at)
        value = "" if result.discharge is None else str(result.discharge)
        flag = "out_of_range" if result.out_of_range else ""
        print(f"{stage}\t{result.shift:.2f}\t{value}\t{flag}")
    return 0


def _recompute(args: argparse.Namespace) -> int:
    from .influxql import QueryError
    from ..ingest.config import ConfigError, load_config
    from .recompute import recompute
    from ..ingest.writer import WriteError
    try:
        report = recompute(load_config(args.config), args.station, args.start, args.end)
    except (ConfigError, ValueError) as e:
        return _fail("recompute", e, 2)
    except (WriteError, QueryError, OSError) as e:
        return _fail("recompute", e, 1)
    print(f"station {args.station}: {report.stages} stage points, {report.written} discharge "
          f"points written ({report.out_of_range} out of range), {report.no_rating} without "
          f"an effective rating ({report.removed} discharge points derived before removed); "
          f"ratings: {', '.join(report.ratings) or 'none'}")
    return 0


def _influx_setup(args: argparse.Namespace) -> int:
    from .influxql import QueryError
    from ..ingest.config import ConfigError, load_config
    from .influx_setup import setup
    from .influx_setup import SetupError, runner, users
    try:
        config = load_config(args.config)
        admin = _admin(args)
        if admin is None:
            done = setup(config, None, dry_run=args.dry_run)
        else:
            run = runner(config, *admin)
            done = setup(config, run, dry_run=args.dry_run)
            done += users(config, _users(args, config, admin[0]), run, args.dry_run)
    except ConfigError as e:
        return _fail("influx setup", e, 2)
    except (QueryError, OSError, SetupError) as e:
        return _fail("influx setup", f"{config.influx.url}: {e}", 1)
    verb = "would run" if args.dry_run else "ran"
    for statement in done:
        print(f"{verb}: {statement}")
    print(f"database {config.influx.database}: "
          f"{'up to date' if not done else f'{len(done)} changes'}")
    return 0


def _admin(args: argparse.Namespace) -> tuple[str, str] | None:
    """(user, password) of --admin-user; ConfigError when a reader is asked for without one or
    its password cannot be had."""
    from ..ingest.config import ConfigError
    if args.admin_user is None:
        if args.reader:
            raise ConfigError("--reader needs --admin-user (users are made by an admin)")
        return None
    if args.admin_password_file is not None:
        return args.admin_user, read_secret(args.admin_password_file, "--admin-password-file")
    password = os.environ.get("WATERSHED_INFLUX_ADMIN_PASSWORD", "")
    if not password:
        raise ConfigError("--admin-user needs --admin-password-file or "
                          "$WATERSHED_INFLUX_ADMIN_PASSWORD")
    return args.admin_user, password


def _users(args: argparse.Namespace, config: Any, admin: str) -> list[Any]:
    from .influx_setup import User
    wanted = []
    i = config.influx
    if i.username and i.username != admin:
        wanted.append(User(i.username, "WRITE", i.password))
    password = (read_secret(args.reader_password_file, "--reader-password-file")
                if args.reader_password_file is not None else "")
    wanted += [User(name, "READ", password) for name in args.reader]
    return wanted


def _influx_downsample(args: argparse.Namespace) -> int:
    from .influxql import QueryError
    from ..ingest.config import ConfigError, load_config
    from .influx_setup import downsample
    try:
        config = load_config(args.config)
        for statement in downsample(config, args.start, args.end):
            print(f"ran: {statement}")
    except ConfigError as e:
        return _fail("influx downsample", e, 2)
    except (QueryError, OSError) as e:
        return _fail("influx downsample", e, 1)
    return 0


def _query(args: argparse.Namespace) -> int:
    from .influxql import QueryError
    from .query import ReadingsQuery, UnknownName, format_records, run_query
    try:
        src = source(args)
        start, end = time_range(args, src.registry, args.station, args.basin)
        zones = zone_of(args.tz, src.registry)
        basin = first_basin(src.registry, args.station, args.basin)
        # calendar windows count on one clock: the first station's (or basin's) with --tz local
        window_zone = basin.zone if args.tz == "local" and basin else zones(
            args.station[0] if args.station else "")
        q = ReadingsQuery(start, end, tuple(args.station), tuple(args.basin),
                          tuple(args.channel), args.every, args.agg, args.clean,
                          src.retention_policy,
                          tuple(c.strip() for c in args.columns.split(",") if c.strip()),
                          window_zone)
    except ValueError as e:  # ConfigError is one
        return _fail("query", e, 2)
    try:
        records = run_query(src.url, src.database, q, username=src.username,
                            password=src.password)
    except UnknownName as e:
        return _fail("query", e, 2)
    except (QueryError, OSError) as e:
        return _fail("query", f"{src.url}: {e}", 1)
    sys.stdout.write(format_records(records, args.format, zones))
    return 0
