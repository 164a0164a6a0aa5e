"""The README's simulation command, run as written on a terminal (issue 13, item 6): progress
on the terminal while it runs, the report at the end, exit status 0 when nothing is missing.
`--json` gives the same report to a machine, `--keep` says where the kept servers are."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.micropython import micropython_binary

pytestmark = [pytest.mark.integration, pytest.mark.firmware]

REPO = Path(__file__).resolve().parents[2]


def readme_command() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Simulation"):]
    command = re.search(r"`(watershed sim run [^`]+)`", section)
    assert command, "the simulation section names its command"
    return command.group(1)


def run_on_a_terminal(command: str, cwd: Path) -> tuple[int, str, str]:
    """(exit status, stdout, what the terminal showed on stderr)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    controller, terminal = pty.openpty()
    shown = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed: the command has ended
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        done = subprocess.run(command, shell=True, cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=terminal, text=True, timeout=900)
    finally:
        os.close(terminal)
        reader.join(10)
        os.close(controller)
    return done.returncode, done.stdout, shown.decode(errors="replace")


def test_the_readme_simulation_runs_as_written_with_progress_and_its_report(tmp_path):
    micropython_binary()
    command = readme_command()
    assert command == "watershed sim run scenarios/six_days_five_stations.toml"
    shutil.copytree(REPO / "scenarios", tmp_path / "scenarios")
    status, out, terminal = run_on_a_terminal(command, tmp_path)
    assert status == 0, (out, terminal[-3000:])
    progress = re.findall(r"running: 2026-03-\d\dT\d\d:\d\d:\d\dZ \(\s*\d+%\), (\d+) readings",
                          terminal)
    assert len(progress) >= 3, terminal[-2000:]  # it moved while we watched
    assert [int(n) for n in progress] == sorted(int(n) for n in progress)
    summary = out.strip().splitlines()[-1]
    assert re.match(r"expected \d{4,}, missing 0, mismatched 0; 6 simulated days in", summary)
    # The faults happened and cost nothing: the power cut, the bus outage, five stations for
    # six days in 48 KB heaps with no firmware fault, and the day without power left its trace
    # (the station's not_sampled_s report, firmware/gap.py) stored exactly in InfluxDB.
    assert re.findall(r"fault at \+[\d.]+ h: (.*)", out) == ["SAN-02 power off",
                                                             "SAN-02 power on"]
    [bus] = re.findall(r"link bus-zamora: .*'lost_outage': (\d+)", out)
    assert int(bus) > 0
    assert "firmware fault" not in out
    assert re.search(r"^SAN-02 +not_sampled_s +1 +1 +0 +0$", out, re.M), out


def test_json_for_machines_and_keep_says_where_the_servers_are(tmp_path):
    micropython_binary()
    scenario = tmp_path / "short.toml"
    text = (REPO / "scenarios" / "six_days_five_stations.toml").read_text()
    scenario.write_text(text.replace('duration = "6d"', 'duration = "1d"'))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    done = subprocess.run(["watershed", "sim", "run", str(scenario), "--json", "--keep",
                           "--workdir", str(tmp_path / "sim")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    report = json.loads(done.stdout)  # stdout is the report alone
    kept = report["kept"]
    try:
        assert done.returncode == 0 and report["ok"], done.stderr[-3000:]
        assert report["missing"] == 0 and report["expected"] == sum(
            c["expected"] for c in report["channels"]) > 0
        assert {c["station"] for c in report["channels"]} == {
            "SAN-01", "SAN-02", "SAN-03", "SAN-04", "MAY-05"}
        assert kept["influxdb_url"].startswith("http://127.0.0.1:")
        query = urllib.parse.urlencode({"db": kept["database"],
                                        "q": "SELECT count(value) FROM readings"})
        with urllib.request.urlopen(f"{kept['influxdb_url']}/query?{query}", timeout=10) as r:
            counted = json.load(r)["results"][0]["series"][0]["values"][0][1]
        assert counted > 0  # the kept server answers, with the run's data
    finally:
        for pid in kept["pids"]:
            os.kill(pid, 15)
