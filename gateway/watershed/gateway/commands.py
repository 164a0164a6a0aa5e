"""Gateway operators' subcommands of ``watershed`` (beyond ``watershed gateway``).

    watershed gateway quarantine list    (--config FILE | --store DB) [--all] [--json]
    watershed gateway quarantine release ID --to STATION --config FILE
    watershed gateway quarantine drop    ID (--config FILE | --store DB)
    watershed gateway status --config FILE [--json]
    watershed gateway op STATION sample-now|config-get|config-set FILE|backfill FIRST END|reboot
                         --config FILE [--timeout S] [--username U --password-file F]

They work on the gateway's store file, also while the daemon runs (SQLite with a busy timeout;
released readings are picked up by its forwarder within a second). ``status`` reads the store
and the daemon's health file (status.py) and needs no broker; ``op`` goes through the broker to
the daemon (operate.py, remote.py) and prints the station's result, or says it timed out.

Exit codes: 0 done; 1 the operation failed (the station or gateway said no, no result in time,
the broker unreachable); 2 the command line or the config is wrong.
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
    p = actions.add_parser("status", help="stations, what waits, quarantine, losses, alarms",
                           description="What the gateway holds and how it is, from its store "
                                       "and its daemon's health file; no broker needed.")
    p.add_argument("--config", "-c", type=Path, required=True, dest="gateway_config",
                   help="gateway TOML config file")
    p.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    p.set_defaults(func=_status)
    p = actions.add_parser("op", help="a remote operation on a station, over MQTT",
                           description="Send an operation to the gateway's command topic and "
                                       "print the station's result (or a timeout).")
    p.add_argument("station", help="station id (the registry's)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", type=Path, required=True, dest="gateway_config",
                        help="gateway TOML config file (its id and broker)")
    common.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for the result (default 60)")
    common.add_argument("--username", help="MQTT user (default: the config's; e.g. operator)")
    common.add_argument("--password-file", type=Path,
                        help="file holding that user's MQTT password")
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    ops = p.add_subparsers(dest="op", required=True, metavar="OPERATION")
    ops.add_parser("sample-now", parents=[common], help="sample every sensor now")
    ops.add_parser("config-get", parents=[common],
                   help="the station's config hash and the config last pushed to it")
    o = ops.add_parser("config-set", parents=[common], help="push a station config (JSON file)")
    o.add_argument("file", type=Path, help="the station's config, JSON")
    o = ops.add_parser("backfill", parents=[common],
                       help="ask the station again for seqs FIRST..END-1")
    o.add_argument("first", type=int)
    o.add_argument("end", type=int)
    ops.add_parser("reboot", parents=[common], help="reboot the station")
    p.set_defaults(func=_op)


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
        raise ConfigError(f"no gateway store at {path}")
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


def _status(args: argparse.Namespace) -> int:
    from .status import gather_status, render
    from .store import Store

    try:
        config = load_config(args.gateway_config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not Path(config.store).exists():
        print(f"error: no gateway store at {config.store}", file=sys.stderr)
        return 2
    with Store(config.store, quota_bytes=config.store_quota_bytes,
               protected_events=config.protected_event_readings) as store:
        status = gather_status(config, store)
    print(json.dumps(status, separators=(",", ":")) if args.json else render(status))
    return 0


def _op(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .operate import OperationTimeout, send_operation

    try:
        config = load_config(args.gateway_config)
        body = _operation(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    mqtt = config.mqtt
    if args.username is not None:
        mqtt = replace(mqtt, username=args.username, password="")
    if args.password_file is not None:
        try:
            mqtt = replace(mqtt, password=args.password_file.read_text().strip())
        except OSError as e:
            print(f"error: cannot read the password file {args.password_file}: {e.strerror}",
                  file=sys.stderr)
            return 2
    try:
        result = send_operation(config.id, mqtt, body, args.timeout)
    except OperationTimeout as e:
        print(f"timeout: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: broker {mqtt.host}:{mqtt.port}: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    else:
        extra = {k: v for k, v in result.items()
                 if k not in ("v", "gateway", "id", "op", "station", "ok", "status", "detail",
                              "at")}
        print(f"{args.station} {args.op}: {result.get('status')}"
              + (f" ({result['detail']})" if result.get("detail") else ""))
        for key, value in extra.items():
            print(f"  {key}: {json.dumps(value, sort_keys=True)}")
    return 0 if result.get("ok") else 1


def _operation(args: argparse.Namespace) -> dict[str, Any]:
    from .operate import command_body

    if args.op == "config-set":
        try:
            station_config = json.loads(args.file.read_text())
        except OSError as e:
            raise ConfigError([f"{args.file}: cannot read: {e.strerror}"]) from None
        except ValueError as e:
            raise ConfigError([f"{args.file}: not JSON: {e}"]) from None
        if not isinstance(station_config, dict):
            raise ConfigError([f"{args.file}: a station config is a JSON object"])
        return command_body("config", args.station, config=station_config)
    if args.op == "backfill":
        return command_body("backfill", args.station, first_seq=args.first, end_seq=args.end)
    return command_body(args.op, args.station)
