"""``watershed``: the command line for technicians, gateway operators and hydrologists.

The two services (``gateway``, ``ingest``) are a ``run(config)`` each; every other area adds its
subcommands with a ``register(subparsers)`` function listed below. The simulator's commands
(``demo``, ``sim``) are added only when ``watershed_sim`` is installed: nothing else needs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

# name: (module with ``run(config_path)``, help, description)
SERVICES = {
    "gateway": ("watershed.gateway.daemon",
                "run the gateway daemon (serial links → store → MQTT)",
                "Poll stations on serial links, store readings durably, acknowledge them and "
                "forward them to MQTT."),
    "ingest": ("watershed.ingest.service",
               "run the ingest service (MQTT → InfluxDB)",
               "Subscribe to readings on MQTT and write them to InfluxDB, acknowledging each "
               "message only once its points are written."),
}
# Modules with a ``register(subparsers)`` that adds that area's subcommands.
COMMAND_MODULES = (
    "watershed.gateway.commands",
    "watershed.ingest.commands",
    "watershed.hydro.commands",
    "watershed.firmware_build",
    "watershed.station_tools.commands",
)
SIM_PACKAGE = "watershed_sim"
SIM_COMMANDS = SIM_PACKAGE + ".commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watershed",
        description="Remote watershed monitoring: gateway daemon, MQTT→InfluxDB ingest, tools.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_, description) in SERVICES.items():
        p = sub.add_parser(name, help=help_, description=description)
        # Optional to argparse so that `gateway ACTION` (gateway/commands.py) may go without it.
        p.add_argument("--config", "-c", type=Path, help=f"{name} TOML config file (required)")
        p.set_defaults(func=_run_service, service=module, usage_error=p.error)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    try:
        sim = importlib.import_module(SIM_COMMANDS)
    except ModuleNotFoundError as e:
        if e.name != SIM_PACKAGE:
            raise  # the simulator is installed but broken: say so, do not hide its commands
    else:
        sim.register(sub)
    return parser


def _run_service(args: argparse.Namespace) -> Any:
    if args.config is None:
        args.usage_error("the following arguments are required: --config")
    return importlib.import_module(args.service).run(args.config)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
