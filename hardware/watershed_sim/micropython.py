"""The MicroPython unix port the simulated stations run in.

The stations run the firmware as a board does, precompiled to .mpy by
``watershed.firmware_build.compile_firmware`` (mpy-cross, the same 1.25 .mpy version as the unix
port), from a folder on MICROPYPATH.
"""

from __future__ import annotations

import os
from pathlib import Path


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
