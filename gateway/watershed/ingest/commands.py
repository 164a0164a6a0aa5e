"""The ingest operators' subcommands of ``watershed``: who owns each station (owners.py).

    watershed station owners --config ingest.toml [--json]
    watershed station move STATION --to GATEWAY --config ingest.toml [--by NAME]

They work on the ingest's owners file, also while the ingest runs (a running ingest sees a move
within a second). Run them as the user the ingest runs as (``sudo -u watershed``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..command_groups import actions_of
from ..contracts.ids import is_valid_id
from .config import ConfigError, load_config
from .owners import Owners


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    actions = actions_of(sub, "station")
    o = actions.add_parser("owners", help="each station's owner, since when, and who said so",
                           description="A station's readings are written only from the gateway "
                                       "that owns it: the first one it was heard from, until "
                                       "moved with `watershed station move`.")
    o.add_argument("--config", "-c", type=Path, required=True, help="ingest TOML config file")
    o.add_argument("--json", action="store_true", help="one JSON object per line")
    o.set_defaults(func=_owners)
    m = actions.add_parser("move", help="give a station to another gateway (recorded with time)",
                           description="From now on the ingest writes STATION's readings only "
                                       "from GATEWAY; the old owner's are refused.")
    m.add_argument("station", metavar="STATION")
    m.add_argument("--to", required=True, metavar="GATEWAY", help="the new owning gateway")
    m.add_argument("--config", "-c", type=Path, required=True, help="ingest TOML config file")
    m.add_argument("--by", default=None, metavar="NAME",
                   help="who moves it, for the record (default: the login name)")
    m.set_defaults(func=_move)


def _open(config_path: Path) -> tuple[Owners, Any]:
    config = load_config(config_path)
    return Owners(config.ingest.owners_path, "cli"), config


def _owners(args: argparse.Namespace) -> int:
    try:
        owners, _ = _open(args.config)
        records = owners.all()
    except (ConfigError, OSError) as e:
        print(f"watershed station owners: {e}", file=sys.stderr)
        return 2
    for r in records:
        if args.json:
            print(json.dumps({"station": r.station, "gateway": r.gateway, "at": r.at,
                              "by": r.by}))
        else:
            print(f"{r.station}\t{r.gateway}\tsince {_iso(r.at)}\t{r.by}")
    return 0


def _move(args: argparse.Namespace) -> int:
    bad = [name for name in (args.station, args.to) if not is_valid_id(name)]
    by = args.by or os.environ.get("SUDO_USER") or getpass.getuser()
    if bad or not is_valid_id(by):
        print(f"watershed station move: not a valid identifier: {', '.join(bad) or by!r}",
              file=sys.stderr)
        return 2
    try:
        owners, config = _open(args.config)
        entry = config.station(args.station)
        if entry is not None and entry.gateways:
            print(f"watershed station move: {args.config} names the owners of {args.station} "
                  f"([[stations]] gateways = {list(entry.gateways)}): change them there",
                  file=sys.stderr)
            return 2
        previous = owners.move(args.station, args.to, by)
    except (ConfigError, OSError) as e:
        print(f"watershed station move: {e}", file=sys.stderr)
        return 2
    was = f"from {previous.gateway} " if previous is not None else ""
    print(f"station {args.station} moved {was}to {args.to} at {_iso(int(time.time()))} "
          f"by {by} ({owners.path})")
    return 0


def _iso(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
