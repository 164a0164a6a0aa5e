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
