"""The gateway package and the simulator type-check with mypy (`make typecheck`): the same
command, its settings in scripts/mypy-host.ini. The firmware is checked apart, against the
board stubs (test_typecheck.py in tests/firmware)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "mypy", "--config-file", "scripts/mypy-host.ini",
           "gateway/watershed", "hardware/watershed_sim"]


def test_the_gateway_package_and_the_simulator_type_check() -> None:
    result = subprocess.run(COMMAND, cwd=ROOT, capture_output=True, text=True, timeout=600)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found"), result.stdout


def test_the_check_reports_an_error_in_host_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f() -> int:\n    return 'not a number'\n")

    result = subprocess.run([*COMMAND[:5], str(bad)], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)

    assert result.returncode == 1
    assert "bad.py:2: error: Incompatible return value type" in result.stdout
