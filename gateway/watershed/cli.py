"""``watershed``: the command line for technicians, gateway operators and hydrologists.

Each subcommand lives in the module that does the work; this file only dispatches. An area adds
its subcommands with a ``register(subparsers)`` function listed in COMMAND_MODULES.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# Modules with a ``register(subparsers)`` that adds that area's subcommands.
COMMAND_MODULES = (
    "watershed.gateway.commands",
    "watershed.ingest.commands",
    "watershed_sim.commands",
)


def _gateway(args: argparse.Namespace) -> int:
    if args.config is None:  # optional only so that `gateway ACTION` may go without it
        args.usage_error("the following arguments are required: --config")
    from .gateway.daemon import run
    return run(args.config)


def _ingest(args: argparse.Namespace) -> int:
    from .ingest.service import run
    return run(args.config)


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoSettings, run_demo
    return run_demo(DemoSettings(stations=args.stations, hours=args.hours, speed=args.speed,
                                 workdir=args.workdir, keep=args.keep))


def _firmware_build(args: argparse.Namespace) -> int:
    from watershed_sim.micropython import compile_firmware
    out = compile_firmware(args.out)
    print(f"compiled firmware into {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watershed",
        description="Remote watershed monitoring: gateway daemon, MQTT→InfluxDB ingest, tools.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("gateway", help="run the gateway daemon (serial links → store → MQTT)",
                       description="Poll stations on serial links, store readings durably, "
                                   "acknowledge them and forward them to MQTT.")
    p.add_argument("--config", "-c", type=Path, help="gateway TOML config file (required)")
    p.set_defaults(func=_gateway, usage_error=p.error)

    p = sub.add_parser("ingest", help="run the ingest service (MQTT → InfluxDB)",
                       description="Subscribe to readings on MQTT and write them to InfluxDB, "
                                   "acknowledging each message only once its points are written.")
    p.add_argument("--config", "-c", type=Path, required=True, help="ingest TOML config file")
    p.set_defaults(func=_ingest)

    p = sub.add_parser("demo", help="run the whole pipeline locally on simulated stations",
                       description="Start mosquitto and influxd on loopback, simulated stations "
                                   "running the real firmware in MicroPython, the gateway and "
                                   "the ingest; run some simulated hours; print what was "
                                   "produced, stored and lost.")
    p.add_argument("--stations", type=int, default=3, help="number of stations (default 3)")
    p.add_argument("--hours", type=float, default=6.0, help="simulated hours (default 6)")
    p.add_argument("--speed", type=int, default=720,
                   help="simulated seconds per wall-clock second (default 720)")
    p.add_argument("--workdir", type=Path, default=Path(".demo"),
                   help="where servers, stores and station flash live (default .demo)")
    p.add_argument("--keep", action="store_true",
                   help="leave mosquitto and influxd running at the end, for querying")
    p.set_defaults(func=_demo)

    p = sub.add_parser("firmware", help="station firmware tools")
    fw = p.add_subparsers(dest="firmware_command", required=True, metavar="ACTION")
    b = fw.add_parser("build", help="compile the firmware to .mpy with mpy-cross",
                      description="Compile every firmware module to .mpy (what goes on a board).")
    b.add_argument("--out", type=Path, default=Path("build/firmware"), help="output folder")
    b.set_defaults(func=_firmware_build)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
