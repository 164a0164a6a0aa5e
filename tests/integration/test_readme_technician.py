"""The README's technician steps, run as written (issue 14): build, copy an example, check it,
flash it. The board is the virtual one (its pty path stands for /dev/ttyUSB0): a unix port, so
the ESP32 config it is given starts the station in safe mode, which still answers the console."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.micropython import micropython_binary
from watershed_sim.virtual_board import VirtualBoard

pytestmark = pytest.mark.firmware

REPO = Path(__file__).resolve().parents[2]


def technician_steps() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## For technicians: stations"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the technician section has its commands in a sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_technician_steps_work_as_written(tmp_path):
    micropython_binary()
    steps = technician_steps()
    assert [s.split()[:3] for s in steps] == [
        ["watershed", "firmware", "build"], ["cp", "hardware/examples/river_stage.json",
                                             "site.json"],
        ["watershed", "station", "check"], ["watershed", "station", "flash"]]
    shutil.copytree(REPO / "hardware" / "examples", tmp_path / "hardware" / "examples")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    with VirtualBoard(tmp_path / "board") as board:
        outputs = []
        for step in steps:
            r = subprocess.run(step.replace("/dev/ttyUSB0", board.path), shell=True,
                               cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=300)
            assert r.returncode == 0, (step, r.stdout, r.stderr)
            outputs.append(r.stdout)
    assert (tmp_path / "build" / "firmware" / "main.py").is_file()
    assert (tmp_path / "build" / "firmware" / "station.mpy").is_file()
    assert "ok for esp32: station SAN-01" in outputs[2]
    assert "a 7 Ah battery lasts 58 days without sun" in outputs[2]  # the power budget
    flashed = outputs[3].splitlines()
    assert any(line.startswith("  writing config.json") for line in flashed), flashed
    assert any(line.startswith("warning: the config is for esp32") for line in flashed)
    assert any(line.startswith("C reset ") and line.endswith(" error") for line in flashed), (
        flashed)
