"""Every firmware module compiles with mpy-cross, the form it is deployed in."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fixtures.micropython import FIRMWARE_DIR
from watershed.firmware_build import mpy_cross

pytestmark = pytest.mark.firmware

MODULES = sorted(FIRMWARE_DIR.rglob("*.py"))


def test_there_are_firmware_modules() -> None:
    assert FIRMWARE_DIR / "wire.py" in MODULES


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(FIRMWARE_DIR)))
def test_module_compiles(module: Path, tmp_path: Path) -> None:
    relative = module.relative_to(FIRMWARE_DIR)
    out = tmp_path / relative.with_suffix(".mpy")
    out.parent.mkdir(parents=True, exist_ok=True)

    result = subprocess.run([mpy_cross(), "-o", str(out), "-s", str(relative),
                             str(module)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:1] == b"M"  # the .mpy header
