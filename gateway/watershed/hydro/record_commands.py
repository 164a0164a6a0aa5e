"""The hydrologists' record subcommands of ``watershed``: plot, export, audit and correct
(flag / unflag / list) — each reads one or more stations' raw readings from InfluxDB."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from .timearg import unix_time
from .cli_common import add_range_args, add_source_args, add_tz_arg, source, time_range, zone_of


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    p = sub.add_parser("plot", help="hydrograph per station to PNG, SVG or PDF",
                       description="Stage and discharge (rating changes marked) with rain as "
                                   "an inverted hyetograph on one time axis; flagged readings "
                                   "marked by kind; missing stretches left as gaps. Several "
                                   "--station stack on one figure.")
    add_source_args(p, rp=False)
    p.add_argument("--station", action="append", required=True,
                   help="station id (repeatable: one figure, stations stacked)")
    add_range_args(p)
    add_tz_arg(p)
    p.add_argument("--output", "-o", type=Path, required=True,
                   help="file to write; its suffix picks the format: .png, .svg or .pdf")
    p.add_argument("--title", default="", help="figure title (default none)")
    p.set_defaults(func=_plot)

    e = sub.add_parser("export", help="a station's record as CSV (long, wide), USGS RDB or "
                                      "WaterML 2.0",
                       description="Raw readings with flags (as stored and as corrected), "
                                   "units and the station's metadata from the registry.")
    add_source_args(e, rp=False)
    e.add_argument("--station", action="append", required=True,
                   help="station id (repeatable with csv-long; one for the other formats)")
    e.add_argument("--channel", action="append", default=[],
                   help="channel (repeatable; default all)")
    add_range_args(e)
    add_tz_arg(e)
    e.add_argument("--format", choices=("csv-long", "csv-wide", "rdb", "waterml2"),
                   default="csv-long", help="output format (default csv-long)")
    e.add_argument("--output", "-o", type=Path, help="file to write (default stdout)")
    e.set_defaults(func=_export)

    a = sub.add_parser("audit", help="prove a station's record complete: every sample slot "
                                     "accounted for",
                       description="Every slot the station's channel intervals (registry "
                                   "'channels') imply between --start and --end: stored, "
                                   "stored as missing, lost with its cause (the gateways' loss "
                                   "ledgers on MQTT, read with --config), not sampled (the "
                                   "station's not_sampled_s reports), pending, marked by a "
                                   "correction, or unaccounted; seq continuity from the stored "
                                   "seq. Exit status 1 when a slot is unaccounted for.")
    add_source_args(a, rp=False)
    a.add_argument("--station", required=True, help="station id")
    add_range_args(a)
    add_tz_arg(a)
    a.add_argument("--health-timeout", type=float, default=10.0,
                   help="seconds to wait for the broker's retained health (default 10)")
    a.set_defaults(func=_audit)

    c = sub.add_parser("correct", help="flag or unflag readings, or mark a period, with "
                                       "who/when/why (the original is kept)",
                       description="Corrections are kept beside the readings (measurement "
                                   "'corrections'), never over them: query, plot, export and "
                                   "audit show the stored flags and the corrected ones.")
    actions = c.add_subparsers(dest="correct_command", required=True, metavar="ACTION")
    for name, helptext, default in (
            ("flag", "add flags to one reading (--at) or a period (--start/--end: sensor "
                     "fouled, ice)", "suspect"),
            ("unflag", "remove flags from one reading or a period",
             "out_of_range,suspect,spike,flatline,clock_unsynced,clock_jump")):
        f = actions.add_parser(name, help=helptext)
        add_source_args(f, rp=False)
        f.add_argument("--station", required=True, help="station id")
        f.add_argument("--channel", action="append", required=True,
                       help="channel (repeatable)")
        f.add_argument("--at", type=unix_time, help="the one reading's time (Unix s or ISO 8601)")
        f.add_argument("--start", type=unix_time, help="period start (instead of --at)")
        f.add_argument("--end", type=unix_time, help="period end, exclusive")
        f.add_argument("--flags", default=default,
                       help=f"flag names, comma-separated (default {default})")
        f.add_argument("--who", default=os.environ.get("USER") or os.environ.get("LOGNAME")
                       or "", help="who decides (default $USER)")
        f.add_argument("--why", required=True, help="the reason, e.g. 'ice on the sensor'")
        f.set_defaults(func=_correct, correct_action=name)
    ls = actions.add_parser("list", help="the corrections of a station, oldest first")
    add_source_args(ls, rp=False)
    ls.add_argument("--station", required=True, help="station id")
    add_range_args(ls)
    add_tz_arg(ls)
    ls.set_defaults(func=_corrections_list)


def _fail(command: str, error: object, status: int) -> int:
    print(f"watershed {command}: {error}", file=sys.stderr)
    return status


def _plot(args: argparse.Namespace) -> int:
    from .influxql import QueryError
    from .plot import FORMATS, hydrograph
    from .query import UnknownName
    from .series import load_station
    fmt = args.output.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        return _fail("plot", f"--output {args.output}: the suffix must be one of "
                             f"{', '.join('.' + f for f in FORMATS)}", 2)
    try:
        src = source(args)
        start, end = time_range(args, src.registry, args.station)
        zone = zone_of(args.tz, src.registry)(args.station[0])
        stations = [load_station(src, s, start, end) for s in args.station]
    except (UnknownName, ValueError) as e:
        return _fail("plot", e, 2)
    except (QueryError, OSError) as e:
        return _fail("plot", e, 1)
    intervals = {(s.id, ch): iv for s in src.registry.stations.values()
                 for ch, iv in s.channels.items()}
    figure = hydrograph(stations, zone, intervals, args.title)
    try:
        figure.savefig(args.output, format=fmt, dpi=120)
    except OSError as e:
        return _fail("plot", f"{args.output}: {e}", 1)
    print(f"wrote {args.output} ({', '.join(args.station)}, "
          f"{sum(len(p) for s in stations for p in s.channels.values())} readings)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from . import export
    from .influxql import QueryError
    from .query import UnknownName
    from .series import load_station
    if args.format != "csv-long" and len(args.station) != 1:
        return _fail("export", f"--format {args.format} takes one --station "
                               f"(csv-long takes several)", 2)
    try:
        src = source(args)
        start, end = time_range(args, src.registry, args.station)
        zones = zone_of(args.tz, src.registry)
        series = [load_station(src, s, start, end, tuple(args.channel)) for s in args.station]
    except (UnknownName, ValueError) as e:
        return _fail("export", e, 2)
    except (QueryError, OSError) as e:
        return _fail("export", e, 1)
    st, zone = series[0], zones(args.station[0])
    info = src.registry.station(st.station)
    text = (export.csv_long(series, zones) if args.format == "csv-long"
            else export.csv_wide(st, zone) if args.format == "csv-wide"
            else export.rdb(st, info, zone) if args.format == "rdb"
            else export.waterml2(st, info, zone))
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as e:
        return _fail("export", f"{args.output}: {e}", 1)
    print(f"wrote {args.output} ({args.format}, "
          f"{sum(len(p) for s in series for p in s.channels.values())} readings)")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from ..contracts.channels import NOT_SAMPLED
    from .audit import audit, format_audit, gap_periods
    from .corrections import load_corrections
    from .health_reader import retained_health
    from .influxql import QueryError
    from .query import UnknownName, time_text
    from .series import load_station
    try:
        src = source(args)
        info = src.registry.station(args.station)
        if info is None or not info.channels:
            raise ValueError(f"the station registry has no channels for {args.station} "
                             f"(channels = {{ stage_m = 900, ... }} under its [[station]]; "
                             f"--registry FILE)")
        start, end = time_range(args, src.registry, [args.station])
        zone = zone_of(args.tz, src.registry)(args.station)
        series = load_station(src, args.station, start, end)
        # a gap is reported when sampling resumes: after --end too
        reports = load_station(src, args.station, start, max(end, int(time.time())) + 1,
                               (NOT_SAMPLED,), check=False).channels.get(NOT_SAMPLED, [])
        corrections = load_corrections(src, args.station, start, end)
    except (UnknownName, ValueError) as e:
        return _fail("audit", e, 2)
    except (QueryError, OSError) as e:
        return _fail("audit", e, 1)
    health = None
    if args.config:
        from ..ingest.config import load_config
        mqtt = load_config(args.config).mqtt
        try:
            health = retained_health(mqtt, args.health_timeout)
        except OSError as e:
            return _fail("audit", f"gateway health from {mqtt.host}:{mqtt.port}: {e}", 1)
    result = audit(series, info.channels, start, end, health, corrections,
                   gaps=gap_periods(reports))
    sys.stdout.write(format_audit(result, lambda ts: time_text(ts, zone)))
    return 1 if result.unaccounted else 0


def _correct(args: argparse.Namespace) -> int:
    from ..contracts.ids import check_id
    from .corrections import Correction, record
    from .flags import flag_names, parse_flag_names
    from .influxql import QueryError
    from .query import time_text
    try:
        if (args.at is None) == (args.start is None and args.end is None):
            raise ValueError("give --at for one reading, or --start and --end for a period")
        start, end = (args.at, args.at + 1) if args.at is not None else (args.start, args.end)
        if start is None or end is None or end <= start:
            raise ValueError("a period needs --start and a later --end")
        if not args.who.strip() or not args.why.strip():
            raise ValueError("--who and --why must not be empty")
        flags = parse_flag_names(args.flags)
        check_id("station", args.station)
        for channel in args.channel:
            check_id("channel", channel)
        src = source(args)
    except ValueError as e:
        return _fail("correct", e, 2)
    made = time.time_ns()
    corrections = [Correction(made + i, args.station, channel, start, end,
                              flags if args.correct_action == "flag" else 0,
                              flags if args.correct_action == "unflag" else 0,
                              args.who.strip(), args.why.strip())
                   for i, channel in enumerate(args.channel)]
    try:
        record(src, corrections)
    except (QueryError, OSError) as e:
        return _fail("correct", e, 1)
    sign = "+" if args.correct_action == "flag" else "-"
    for c in corrections:
        print(f"recorded: {args.station} {c.channel} {time_text(start)} .. {time_text(end)} "
              f"{sign}{flag_names(flags)} by {c.who}: {c.why}")
    return 0


def _corrections_list(args: argparse.Namespace) -> int:
    from .corrections import load_corrections
    from .influxql import QueryError
    from .query import time_text
    try:
        src = source(args)
        start, end = time_range(args, src.registry, [args.station])
        zone = zone_of(args.tz, src.registry)(args.station)
        corrections = load_corrections(src, args.station, start, end)
    except ValueError as e:
        return _fail("correct list", e, 2)
    except (QueryError, OSError) as e:
        return _fail("correct list", e, 1)
    for c in corrections:
        print(f"{c.channel}\t{time_text(c.start, zone)}\t{time_text(c.end, zone)}\t"
              f"{c.describe()}")
    if not corrections:
        print(f"no corrections of {args.station} in this range")
    return 0
