"""The firmware type-checks with mypy against the MicroPython board stubs (issue 3, item 9).

The same command as ``make typecheck-firmware`` (scripts/typecheck_firmware.py): the stubs are
installed once into ``.stubs/<board>``; each board is one mypy run over the board-independent
modules plus that board's HAL.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.micropython import FIRMWARE_DIR

pytestmark = pytest.mark.firmware

ROOT = FIRMWARE_DIR.parent
SCRIPT = ROOT / "scripts" / "typecheck_firmware.py"


def typecheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_firmware_type_checks_against_esp32_rp2_and_unix_stubs() -> None:
    result = typecheck()

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("Success: no issues found") == 3, result.stdout


def test_each_board_checks_the_common_modules_and_only_its_own_hal() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import typecheck_firmware as tc
    finally:
        sys.path.remove(str(SCRIPT.parent))
    names = {board: {str(p.relative_to(FIRMWARE_DIR)) for p in tc.modules(board)}
             for board in tc.BOARDS}

    for board in tc.BOARDS:
        hals = {n for n in names[board] if n.startswith("hal_")}
        assert hals == {"hal_%s.py" % board}
        assert {"wire.py", "station.py", "outbox.py", "clock.py", "drivers/__init__.py",
                "drivers/bme280.py", "drivers/sdi12.py"} <= names[board]


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_errors_inside_unannotated_functions_fail_the_check(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "fw", {
        "sampler.py": "import time\n\ndef wait():\n    return time.ticks_diff(1)\n",
    })

    result = typecheck("--board", "esp32", "--firmware", str(tree))

    assert result.returncode == 1
    assert "sampler.py:4: error" in result.stdout, result.stdout


def test_board_modules_are_checked_against_their_own_stubs_only(tmp_path: Path) -> None:
    # rp2 exists only in the rp2 stubs and esp32.raw_temperature only in the esp32 ones: each
    # HAL passes because it is never checked against the other board.
    tree = write_tree(tmp_path / "fw", {
        "hal_esp32.py": "import esp32\n\ndef t():\n    return esp32.raw_temperature()\n",
        "hal_rp2.py": "import rp2\n\ndef b():\n    return rp2.bootsel_button()\n",
        "wire.py": "X = 1\n",
    })

    ok = typecheck("--board", "esp32", "--board", "rp2", "--firmware", str(tree))

    assert ok.returncode == 0, ok.stdout + ok.stderr
    (tree / "wire.py").write_text("import rp2\n")  # a common module using one board's API
    bad = typecheck("--board", "esp32", "--firmware", str(tree))
    assert bad.returncode == 1
    assert "wire.py:1: error" in bad.stdout, bad.stdout
