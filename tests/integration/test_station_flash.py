"""``watershed station flash`` end to end against the virtual board running the real firmware
(issue 14, item 2): flash → boot (main.py) → the station's first console status → it answers a
gateway POLL with its HELLO; a second flash writes only what changed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.firmware.station_console import Gateway
from tests.fixtures.micropython import micropython_binary
from watershed.contracts import wire as gw
from watershed_sim.serial_link import VirtualSerialLink
from watershed_sim.virtual_board import VirtualBoard

pytestmark = pytest.mark.firmware

T0 = 1763676000
ADDR = 12


@pytest.fixture
def board(tmp_path: Path) -> Iterator[VirtualBoard]:
    micropython_binary()
    with VirtualBoard(tmp_path / "board") as b:
        yield b


@pytest.fixture
def link() -> Iterator[VirtualSerialLink]:
    with VirtualSerialLink() as link:
        yield link


def site_config(link: VirtualSerialLink, interval_s: int = 60) -> dict[str, Any]:
    # 60 times wall time: a reading a second
    return {"station": "FLASH-01", "address": ADDR, "basin": "santiago",
            "board": {"name": "unix", "data_dir": "data", "io_dir": "io", "sim_epoch": T0,
                      "wall_epoch": int(time.time()), "speed": 60},
            "link": {"port": link.station_path},
            "channels": [{"sensor": "analog", "pin": 26, "channel": 1,
                          "interval_s": interval_s, "exponent": -3, "samples": 1}]}


def flash(board: VirtualBoard, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watershed.cli", "station", "flash",
                           board.path, "--config", str(config)],
                          capture_output=True, text=True, timeout=300)


def test_flash_boot_status_and_hello(board, link, tmp_path):
    config = tmp_path / "site.json"
    config.write_text(json.dumps(site_config(link)))
    r = flash(board, config)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout.splitlines()
    assert "board: MicroPython 1.25, .mpy 6.3, unix" in out
    written = [line for line in out if line.startswith("  writing ")]
    assert any(line.startswith("  writing main.py ") for line in written)
    assert any(line.startswith("  writing station.mpy ") for line in written)
    assert any(line.startswith("  writing drivers/analog.mpy ") for line in written)
    assert any(line.startswith("  writing config.json ") for line in written)
    assert any(line.startswith("station FLASH-01 address 12") for line in out), out
    assert any(line.startswith("C clock ") for line in out), out  # the first status

    gateway = Gateway(link.gateway_path)
    try:
        got = gateway.ask(gw.Poll(ADDR, gw.WANT_HELLO), (gw.Hello,))
    finally:
        gateway.close()
    [hello] = [f for f in got if isinstance(f, gw.Hello)]
    assert hello.station_id == "FLASH-01"
    canonical = config.read_text()
    assert hello.config_hash == gw.config_hash(json.dumps(
        json.loads(canonical), sort_keys=True, separators=(",", ":")).encode())

    # the outbox over the console, into a gateway store: twice, no duplicates
    time.sleep(3)  # a few readings (a second each)
    dumped = tmp_path / "f.csv"
    r = subprocess.run([sys.executable, "-m", "watershed.cli", "station", "dump", board.path,
                        "--out", str(dumped)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = dumped.read_text().splitlines()
    assert rows[0] == "station,seq,channel,name,time,unix_s,mantissa,exponent,value,flags"
    assert len(rows) >= 3 and all(row.startswith("FLASH-01,") for row in rows[1:])
    assert all(",stage_m," in row and row.endswith(",missing|unsynced") for row in rows[1:])
    store = tmp_path / "gw.db"
    for new in (len(rows) - 1, 0):
        r = subprocess.run([sys.executable, "-m", "watershed.cli", "station", "dump", "--load",
                            str(dumped), "--into", str(store), "--basin", "santiago"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == (f"FLASH-01: {new} new, {len(rows) - 1 - new} already "
                                    "stored")

    # again with a new config: only the config is written
    config.write_text(json.dumps(site_config(link, interval_s=120)))
    r = flash(board, config)
    assert r.returncode == 0, r.stdout + r.stderr
    written = [line for line in r.stdout.splitlines() if line.startswith("  writing ")]
    assert [w.split()[1] for w in written] == ["config.json"], r.stdout


def test_a_config_the_checker_refuses_is_never_written(board, link, tmp_path):
    cfg = site_config(link)
    cfg["channels"][0]["exponnent"] = -3
    config = tmp_path / "site.json"
    config.write_text(json.dumps(cfg))
    r = flash(board, config)
    assert r.returncode == 1
    assert "channels.0.exponnent: unknown key" in r.stderr
    assert "nothing was written to the board" in r.stderr
    assert b"config.json" not in board.image.read_bytes()
