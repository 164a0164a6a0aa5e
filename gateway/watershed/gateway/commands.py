"""Gateway operators' subcommands of ``watershed`` (beyond ``watershed gateway``).

    watershed gateway quarantine list    (--config FILE | --store DB) [--all] [--json]
    watershed gateway quarantine release ID --to STATION --config FILE
    watershed gateway quarantine drop    ID (--config FILE | --store DB)

They work on the gateway's store file, also while the daemon runs (SQLite with a busy timeout;
released readings are picked up by its forwarder within a second).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .config import ConfigError, GatewayConfig, load_config


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add this area's subcommands to the ``watershed`` parser: under ``watershed gateway``."""
    actions = sub.choices["gateway"].add_subparsers(dest="gateway_command", metavar="ACTION")
    q = actions.add_parser("quarantine", help="readings whose sender is in doubt: list, release,"
                                              " drop",
                           description="Readings the gateway held back because the station "
                                       "that sent them is in doubt (another id at an address, "
                                       "one id at two addresses, two stations on one address, "
                                       "a reused seq). Release them to a station or drop them.")
    qa = q.add_subparsers(dest="quarantine_command", required=True, metavar="ACTION")
    p = qa.add_parser("list", help="the open entries (one per case), oldest first")
    _store_options(p)
    p.add_argument("--all", action="store_true", help="also entries released or dropped")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_list)
    p = qa.add_parser("release", help="store an entry's readings under a station and forward them",
                      description="The readings enter the store under STATION (its registry "
                                  "basin and channel names) and are forwarded as usual.")
    p.add_argument("id", type=int, help="entry id (from `list`)")
    p.add_argument("--to", required=True, metavar="STATION", help="the station they are from")
    p.add_argument("--config", "-c", type=Path, required=True, dest="quarantine_config",
                   help="gateway TOML config file (its store and station registry)")
    p.set_defaults(func=_release, store=None)
    p = qa.add_parser("drop", help="give an entry up; counted in the loss ledger (quarantined)")
    p.add_argument("id", type=int, help="entry id (from `list`)")
    _store_options(p)
    p.set_defaults(func=_drop)


def _store_options(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", "-c", type=Path, dest="quarantine_config",
                       help="gateway TOML config file (its store)")
    where.add_argument("--store", type=Path, help="the gateway's store file")


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    """The store and the quarantine the arguments name (the registry is empty with --store)."""
    from .quarantine import Quarantine
    from .store import Store

    config: GatewayConfig | None = None
    if args.quarantine_config is not None:
        config = load_config(args.quarantine_config)
        path = Path(config.store)
    else:
        path = args.store
    if not path.exists():
        raise ConfigError([f"no gateway store at {path}"], "quarantine")
    store = Store(path, quota_bytes=config.store_quota_bytes if config else None,
                  protected_events=config.protected_event_readings if config else 0)
    registry = {s.id: s for s in config.stations} if config else {}
    return store, Quarantine(config.id if config else "", store, registry)


def _run(args: argparse.Namespace, action: Any) -> int:
    from .quarantine import QuarantineError

    try:
        store, quarantine = _open(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        with store:
            return action(quarantine)
    except QuarantineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _list(args: argparse.Namespace) -> int:
    from .quarantine import describe

    def show(quarantine: Any) -> int:
        entries = quarantine.entries(state=None if args.all else "open")
        if args.json:
            for entry in entries:
                print(json.dumps(describe(entry), separators=(",", ":")))
            return 0
        if not entries:
            print("no quarantined readings")
            return 0
        print(f"{'ID':>4}  {'CASE':<14}  {'LINK':<20}  {'ADDR':>4}  {'BOUND':<14}  "
              f"{'CLAIMED':<14}  {'READINGS':>8}  {'OPENED (UTC)':<20}  STATE")
        for e in entries:
            opened = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.opened_at))
            state = e.state + (f" to {e.settled_to}" if e.settled_to else "")
            print(f"{e.id:>4}  {e.kind:<14}  {e.link:<20}  {e.address:>4}  {e.bound or '-':<14}"
                  f"  {e.claimed:<14}  {e.readings:>8}  {opened:<20}  {state}")
        return 0
    return _run(args, show)


def _release(args: argparse.Namespace) -> int:
    def release(quarantine: Any) -> int:
        done = quarantine.release(args.id, args.to)
        print(f"quarantine {args.id} released to {args.to}: {done['readings']} readings, "
              f"{done['new']} new, {done['duplicate']} stored already")
        return 0
    return _run(args, release)


def _drop(args: argparse.Namespace) -> int:
    def drop(quarantine: Any) -> int:
        done = quarantine.drop(args.id)
        print(f"quarantine {args.id} dropped: {done['readings']} readings, {done['lost']} "
              "counted lost (quarantined)")
        return 0
    return _run(args, drop)
