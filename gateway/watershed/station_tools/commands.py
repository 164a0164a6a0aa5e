"""``watershed station check|flash|dump``: the command line of a station's technician."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..command_groups import actions_of
from . import check, power


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``station ...`` to the ``watershed`` parser."""
    st = actions_of(sub, "station")
    c = st.add_parser("check", help="check a station config.json for a board",
                      description="Run the firmware's own config validator, then check the "
                                  "config against the board's pin map and the channel "
                                  "catalogue. One line per defect; exit status 1 if any. "
                                  "A config that passes gets its channels and power budget.")
    c.add_argument("config", type=Path, help="the station's config.json")
    c.add_argument("--board", required=True, choices=check.BOARDS, help="the board it runs on")
    c.add_argument("--battery-ah", type=_positive, default=7.0,
                   help="the station's battery, for the power budget (default 7 Ah)")
    c.add_argument("--poll-s", type=_positive, default=60.0,
                   help="the gateway's poll interval, for the power budget (default 60 s)")
    c.set_defaults(func=_check)
    f = st.add_parser("flash", help="put the firmware and a config onto a board over USB",
                      description="Check the board's MicroPython (1.25, .mpy 6.3), copy the "
                                  "firmware files that changed and the config, reset the "
                                  "board and print the station's first status.")
    f.add_argument("port", help="the board's USB serial port (/dev/ttyUSB0, /dev/ttyACM0)")
    f.add_argument("--config", type=Path, required=True, help="the station's config.json")
    f.add_argument("--board", choices=check.BOARDS,
                   help="check the config for this board first (default: the config's)")
    f.add_argument("--firmware", type=Path,
                   help="a built firmware folder (default: build it from the package)")
    f.add_argument("--timeout", type=float, default=60,
                   help="seconds to wait for the station's first status (default 60)")
    f.set_defaults(func=_flash)
    d = st.add_parser("dump", help="save a station's outbox as CSV over its USB console",
                      description="Ask the station's console for its outbox (`dump`) and save "
                                  "it as CSV; --into loads the file into a gateway store.")
    d.add_argument("port", nargs="?", help="the station's USB serial port")
    d.add_argument("--out", type=Path, help="CSV file to write")
    d.add_argument("--from-seq", type=int, default=0, help="first seq to dump (default: all)")
    d.add_argument("--load", type=Path, help="a CSV file from an earlier dump to load")
    d.add_argument("--into", type=Path, help="the gateway's store (SQLite) to load it into")
    d.add_argument("--basin", default="unknown", help="the stations' basin, for --into")
    d.add_argument("--timeout", type=float, default=30, help="seconds to wait for the console")
    d.set_defaults(func=_dump)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _check(args: argparse.Namespace) -> int:
    cfg, bad = check.check_file(args.config, args.board)
    for key, what in bad:
        print(f"{args.config}: {key}: {what}", file=sys.stderr)
    if bad:
        print(f"{args.config}: {len(bad)} defect(s): fix them before flashing",
              file=sys.stderr)
        return 1
    assert cfg is not None
    print(f"{args.config}: ok for {args.board}: station {cfg['station']}, address "
          f"{cfg['address']}, {len(cfg['channels'])} sensor entries")
    for line in check.describe(cfg):
        print(line)
    budget = power.budget(cfg, check.pin_map(args.board)["power"], args.poll_s)
    for line in power.describe(budget, args.battery_ah, args.poll_s):
        print(line)
    return 0


def _flash(args: argparse.Namespace) -> int:
    from . import flash
    return flash.main(args)


def _dump(args: argparse.Namespace) -> int:
    from . import dump
    return dump.main(args)
