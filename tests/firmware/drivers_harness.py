"""Helpers for the driver tests: compile the firmware (packages included) and run a script that
builds drivers from config entries on a unix board, reads them, and prints one JSON line each."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.fixtures.micropython import MicroPythonRunner
from watershed.firmware_build import compile_firmware

READ_SCRIPT = """
import json, sys, time
import hal_unix, drivers
with open(sys.argv[1]) as f:  # a file: the unix port crashes on an argument > ~255 bytes
    cfg = json.load(f)
board = hal_unix.Board(cfg["board"])
drvs = [drivers.make_driver(c, board) for c in cfg["sensors"]]
for r in range(cfg.get("rounds", 1)):
    for i, d in enumerate(drvs):
        t0 = time.ticks_ms()
        try:
            out = d.read()
            err = None
        except OSError as e:
            out = drivers.missing(d)
            err = e.args[0]
        print(json.dumps({"round": r, "sensor": i, "readings": [list(x) for x in out],
                          "error": err, "ms": time.ticks_diff(time.ticks_ms(), t0)}))
print(json.dumps({"done": True, "feeds": board.watchdog_feeds}))
"""


def board_config(tmp_path: Path) -> dict[str, Any]:
    data, io = tmp_path / "flash", tmp_path / "io"
    data.mkdir(exist_ok=True)
    io.mkdir(exist_ok=True)
    now = int(time.time())
    return {"name": "unix", "data_dir": str(data), "io_dir": str(io), "sim_epoch": now,
            "wall_epoch": now, "speed": 1}


def read_sensors(micropython: MicroPythonRunner, tmp_path: Path, sensors: list[dict[str, Any]],
                 rounds: int = 1, timeout: float = 60,
                 board: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    compiled = compile_firmware(tmp_path / "mpy")
    cfg = {"board": board or board_config(tmp_path), "sensors": sensors, "rounds": rounds}
    script = tmp_path / "script" / "read_sensors.py"
    script.parent.mkdir(exist_ok=True)
    script.write_text(READ_SCRIPT)
    config = tmp_path / "sensors.json"
    config.write_text(json.dumps(cfg))
    result = micropython.run(script=script, args=[config], path=[compiled],
                             timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return lines[:-1], lines[-1]
