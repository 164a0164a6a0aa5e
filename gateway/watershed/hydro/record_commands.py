"""The hydrologists' record subcommands of ``watershed``: plot, export, audit and correct
(flag / unflag / list) — each reads one or more stations' raw readings from InfluxDB."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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
