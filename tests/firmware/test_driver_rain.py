"""Tipping-bucket driver: edges from the harness (hal_unix edges file), debounce, persistence."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.firmware.drivers_harness import board_config
from watershed.firmware_build import compile_firmware
from tests.fixtures.micropython import MicroPythonRunner

pytestmark = pytest.mark.firmware

# Commands on stdin, one per line: "sleep <ms>" or "read"; each answered on one line.
SCRIPT = """
import sys, hal_unix, drivers
board = hal_unix.Board(%r)
rain = drivers.make_driver({"sensor": "rain", "pin": 27, "channel": 16,
                            "mm_per_tip_um": 200, "debounce_ms": 50}, board)
print("booted")
while True:
    line = sys.stdin.readline().split()
    if not line:
        break
    if line[0] == "read":
        print(rain.read())
    elif line[0] == "sleep":
        board.sleep_ms(int(line[1]))
        print("tips", rain.tips, "bounces", rain.bounces)
"""


class Station:
    def __init__(self, micropython: MicroPythonRunner, script: Path, compiled: Path) -> None:
        self.proc = micropython.start(script=script, path=[compiled], stdin=subprocess.PIPE)
        assert self.readline() == "booted"

    def readline(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.readline()


def test_tips_are_debounced_counted_and_survive_a_reset(micropython: MicroPythonRunner,
                                                        tmp_path: Path) -> None:
    board = board_config(tmp_path)
    edges = Path(board["io_dir"]) / "edges"
    edges.write_text("27\n" * 5)  # before the board started: not tips
    compiled = compile_firmware(tmp_path / "mpy")
    script = tmp_path / "script" / "rain.py"
    script.parent.mkdir()
    script.write_text(SCRIPT % board)

    def tip() -> None:  # a closure and two bounces, seen in one batch
        with edges.open("a") as f:
            f.write("27\n27\n27\n")

    station = Station(micropython, script, compiled)
    for _ in range(3):
        tip()
        assert station.ask("sleep 60").startswith("tips")
    assert station.ask("read") == "[(16, 600, -3, 0)]"  # 3 tips x 0.2 mm
    tip()
    assert station.ask("sleep 60") == "tips 4 bounces 8"
    station.proc.kill()  # power cut after the tip was counted, before it was read
    station.proc.wait()

    again = Station(micropython, script, compiled)
    assert again.ask("read") == "[(16, 200, -3, 0)]"  # not lost
    assert again.ask("read") == "[(16, 0, -3, 0)]"  # nor reported twice
