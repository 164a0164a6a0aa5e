"""Every firmware module compiles with mpy-cross, the form it is deployed in."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.micropython import FIRMWARE_DIR

pytestmark = pytest.mark.firmware

MODULES = sorted(FIRMWARE_DIR.rglob("*.py"))


def mpy_cross_binary() -> Path:
    """WATERSHED_MPY_CROSS, else the one `make micropython` builds next to the unix port."""
    configured = os.environ.get("WATERSHED_MPY_CROSS")
    if configured:
        binary = Path(configured)
    else:
        cache = Path(os.environ.get("WATERSHED_CACHE", Path.home() / ".cache" / "watershed"))
        binary = cache / "micropython" / "mpy-cross"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"mpy-cross not found at {binary}. Run `make micropython` to build it "
                    "(or set WATERSHED_MPY_CROSS).", pytrace=False)
    return binary


def test_there_are_firmware_modules() -> None:
    assert FIRMWARE_DIR / "wire.py" in MODULES


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(FIRMWARE_DIR)))
def test_module_compiles(module: Path, tmp_path: Path) -> None:
    relative = module.relative_to(FIRMWARE_DIR)
    out = tmp_path / relative.with_suffix(".mpy")
    out.parent.mkdir(parents=True, exist_ok=True)

    result = subprocess.run([str(mpy_cross_binary()), "-o", str(out), "-s", str(relative),
                             str(module)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:1] == b"M"  # the .mpy header
