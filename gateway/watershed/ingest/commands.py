"""Hydrologists' and ingest operators' subcommands of ``watershed`` (rating, recompute)."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

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


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _rating_table(args: argparse.Namespace) -> int:
    from ..ratings.load import load_rating
    from ..ratings.model import RatingError
    from ..ratings.table import format_exsa
    try:
        sys.stdout.write(format_exsa(load_rating(args.rating), args.step, args.at))
    except (RatingError, ValueError) as e:
        print(f"watershed rating: {e}", file=sys.stderr)
        return 2
    return 0


def _rating_discharge(args: argparse.Namespace) -> int:
    from ..ratings.load import load_rating
    from ..ratings.model import RatingError
    try:
        rating = load_rating(args.rating)
    except RatingError as e:
        print(f"watershed rating: {e}", file=sys.stderr)
        return 2
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
    from .config import ConfigError, load_config
    from .recompute import recompute
    from .writer import WriteError
    try:
        report = recompute(load_config(args.config), args.station, args.start, args.end)
    except (ConfigError, ValueError) as e:
        print(f"watershed recompute: {e}", file=sys.stderr)
        return 2
    except (WriteError, OSError) as e:
        print(f"watershed recompute: {e}", file=sys.stderr)
        return 1
    print(f"station {args.station}: {report.stages} stage points, {report.written} discharge "
          f"points written ({report.out_of_range} out of range), {report.no_rating} without "
          f"an effective rating; ratings: {', '.join(report.ratings) or 'none'}")
    return 0
