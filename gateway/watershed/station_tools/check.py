"""A station config checked on the laptop: the firmware's own validator, then the board.

``firmware_defects(cfg)`` runs the firmware's ``schema.check`` (the very module a station runs,
shipped in the package) under CPython. ``board_defects(cfg, board)`` adds what only the laptop
knows: the board's pin map (hardware/boards/<board>.json: pins that exist, ADC-capable and
wake-capable pins, pins that must not be used, UART and I2C pin functions), pins used twice,
and channel numbers against the network's catalogue (contracts 1.6).
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

from watershed.contracts.channels import CATALOGUE, FIRST_STATION_SPECIFIC, NOT_SAMPLED
from watershed.firmware_build import firmware_dir

BOARDS = ("esp32", "rp2")  # the boards with a pin map (unix is the test port)
Defect = tuple[str, str]


@cache
def _schema() -> ModuleType:
    path = firmware_dir() / "schema.py"
    spec = importlib.util.spec_from_file_location("watershed_firmware_schema", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def firmware_defects(cfg: Any) -> list[Defect]:
    """What the station itself would refuse, in its own words."""
    return [tuple(d) for d in _schema().check(cfg)]


def pin_map(board: str) -> dict[str, Any]:
    """The board's pin map (hardware/boards/<board>.json, shipped as watershed/boards)."""
    text = (resources.files("watershed") / "boards" / f"{board}.json").read_text()
    return json.loads(text)


def entry_channels(entry: dict[str, Any]) -> list[int]:
    """The channel numbers one sensor entry stores readings on."""
    kind = entry.get("sensor", "analog")
    if kind in ("sdi12", "bme280"):
        out = list(entry.get("channels", (17, 18, 19)))
    elif kind == "rain":
        out = [entry.get("channel", 16)]
    else:
        out = [entry.get("channel", entry.get("no"))]
    out += [entry.get("range_channel", 0), entry.get("spread", 0)]
    return [c for c in out if c]


class _Pins:
    """Every pin the config uses, checked against the pin map as it is claimed."""

    def __init__(self, pins: dict[str, Any], bad: list[Defect]) -> None:
        self.map = pins
        self.bad = bad
        self.owner: dict[int, str] = {}

    def use(self, key: str, pin: int, *, adc: bool = False, wake: bool = False,
            output: bool = False, shared: bool = False) -> None:
        m = self.map
        reserved = m["must_not_use"].get(str(pin))
        if reserved:
            if not (adc and pin in m["adc"]):  # an internal ADC input may be read, never driven
                self.bad.append((key, f"GPIO {pin} must not be used on {m['board']}: {reserved}"))
                return
        elif pin not in m["gpio"]:
            self.bad.append((key, f"GPIO {pin} is not a usable pin of {m['board']}"))
            return
        if adc and pin not in m["adc"]:
            self.bad.append((key, f"GPIO {pin} has no ADC on {m['board']}; ADC pins: "
                                  + ", ".join(map(str, m["adc"]))))
        if wake and pin not in m["wake"]:
            self.bad.append((key, f"GPIO {pin} cannot wake {m['board']} from sleep (tips would "
                                  "be lost); wake pins: " + ", ".join(map(str, m["wake"]))))
        if output and pin in m["input_only"]:
            self.bad.append((key, f"GPIO {pin} is input-only on {m['board']}"))
        if pin in self.owner and not shared:
            self.bad.append((key, f"GPIO {pin} is already used by {self.owner[pin]}"))
        self.owner.setdefault(pin, key)

    def function(self, key: str, table: str, bus: str, role: str, pin: int) -> None:
        allowed = self.map.get(table, {}).get(bus)
        if allowed is not None and pin not in allowed[role]:
            self.bad.append((key, f"GPIO {pin} cannot be {role.upper()} of bus {bus} on "
                                  f"{self.map['board']}; it can be: "
                                  + ", ".join(map(str, allowed[role]))))


def board_defects(cfg: dict[str, Any], board: str) -> list[Defect]:
    """What the firmware cannot see: the config against ``board``'s pin map, and channels."""
    bad: list[Defect] = []
    b = cfg["board"]
    if b["name"] != board:
        return [("board.name", f"is {b['name']!r} but this check is for {board!r}")]
    pins = _Pins(pin_map(board), bad)
    m = pins.map
    uart_ids = set(m["uarts"])
    for table, roles in (("uarts", ("tx", "rx")), ("i2c", ("scl", "sda")),
                         ("sdi12", ("tx", "rx", "dir"))):
        for bus, spec in b.get(table, {}).items():
            for role in roles:
                if role in spec and spec[role] >= 0:
                    key = f"board.{table}.{bus}.{role}"
                    pins.use(key, spec[role], output=role in ("tx", "dir"))
                    if table != "sdi12" or role != "dir":
                        pins.function(key, "i2c_pins" if table == "i2c" else "uart_pins", bus,
                                      role, spec[role])
            if table != "i2c" and bus not in uart_ids:
                bad.append((f"board.{table}.{bus}", f"{board} has no UART {bus} for it; "
                            "UARTs: " + ", ".join(sorted(uart_ids))))
    if "link_wake" in b:
        pins.use("board.link_wake", b["link_wake"], wake=True, shared=True)
    ports: dict[str, str] = {}

    def port(key: str, value: Any, table: str) -> None:
        if isinstance(value, str):
            bad.append((key, f"a device path is for the unix test port; {board} takes a UART "
                             "id: " + ", ".join(sorted(uart_ids))))
            return
        if str(value) not in uart_ids:
            bad.append((key, f"{board} has no UART {value}; UARTs: "
                             + ", ".join(sorted(uart_ids))))
        elif table == "uarts" and m.get("uart_pins") and str(value) not in b.get("uarts", {}):
            bad.append((key, f"UART {value} has no pins in board.uarts"))
        if value in ports and table == "uarts":
            bad.append((key, f"UART {value} is already {ports[value]}"))
        ports.setdefault(value, key)

    port("link.port", cfg["link"]["port"], "uarts")
    i2c_seen: set[int] = set()
    sdi12_ports: set[Any] = set()
    for i, c in enumerate(cfg["channels"]):
        key = f"channels.{i}"
        kind = c.get("sensor", "analog")
        if kind in ("analog", "rain"):
            pins.use(key + ".pin", c["pin"], adc=kind == "analog", wake=kind == "rain")
        elif kind == "serial_level":
            port(key + ".port", c["port"], "uarts")
        elif kind == "sdi12":
            if c["port"] not in sdi12_ports:  # sensors on one SDI-12 line share its UART
                port(key + ".port", c["port"], "sdi12")
                sdi12_ports.add(c["port"])
            if str(c["port"]) not in b.get("sdi12", {}):
                bad.append((key + ".port", f"SDI-12 port {c['port']} has no pins in board.sdi12"))
        elif kind == "bme280":
            bus = c.get("bus", 0)
            if bus not in i2c_seen:
                i2c_seen.add(bus)
                for role in ("scl", "sda"):
                    if role in c:
                        pins.use(f"{key}.{role}", c[role], output=True)
            if str(bus) not in b.get("i2c", {}) and not ("scl" in c and "sda" in c):
                bad.append((key + ".bus", f"I2C bus {bus} has no pins: give scl and sda here "
                                          "or in board.i2c"))
        for ch in entry_channels(c):
            if ch < FIRST_STATION_SPECIFIC and ch not in CATALOGUE:
                bad.append((key, f"channel {ch} is not in the catalogue (docs/contracts.md "
                                 "1.6); 128-255 are station-specific"))
            elif CATALOGUE.get(ch, ("",))[0] == NOT_SAMPLED:
                bad.append((key, f"channel {ch} is the station's report of slots not "
                                 "sampled (firmware/gap.py), no sensor's"))
    return bad


def check_file(path: Path, board: str) -> tuple[dict[str, Any] | None, list[Defect]]:
    """(config, defects) of the config file at ``path`` for ``board``."""
    try:
        cfg = json.loads(path.read_text())
    except OSError as e:
        return None, [("config", f"cannot be read: {e.strerror}")]
    except ValueError as e:
        return None, [("config", f"not valid JSON: {e}")]
    bad = firmware_defects(cfg)
    if not bad:
        bad = board_defects(cfg, board)
    return cfg, bad


def describe(cfg: dict[str, Any]) -> list[str]:
    """The channels a config produces, in human terms: number, name, meaning with unit."""
    lines = []
    for c in cfg["channels"]:
        for ch in entry_channels(c):
            name, meaning = CATALOGUE.get(ch, (f"ch{ch}", "station-specific"))
            every = c["interval_s"]
            lines.append(f"  {ch:3d} {name:<20} every {every:>5} s  {meaning}")
    return lines
