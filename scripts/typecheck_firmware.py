"""Type-check the station firmware with mypy against the MicroPython board stubs.

    python scripts/typecheck_firmware.py [--board esp32|rp2|unix ...] [--no-install]

The stub packages (pyproject extras ``stubs-esp32``, ``stubs-rp2``, ``stubs-unix``) all provide
the same module names (machine, time, micropython …), so each goes into its own folder,
``.stubs/<board>``, installed with ``pip --target`` once and reused while its requirement is
unchanged. Each board is one mypy run with ``.stubs/<board>`` as MYPYPATH and its ``stdlib/``
(micropython-stdlib-stubs, typeshed-shaped) as the custom typeshed, so CPython's standard library
stubs never stand in for MicroPython's:

- esp32: the board-independent modules (everything but ``hal_*.py``) + hal_esp32.py
- rp2:   the board-independent modules + hal_rp2.py
- unix:  the board-independent modules + hal_unix.py (the tests' board)

Settings (and the narrowly scoped exceptions) are in scripts/mypy-firmware.ini. Exit status 0
when every board passes; mypy's messages otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
STUBS = ROOT / ".stubs"
CONFIG = ROOT / "scripts" / "mypy-firmware.ini"
BOARDS = ("esp32", "rp2", "unix")
_MARKER = ".watershed-requirement"


def requirement(board: str) -> str:
    """The stub requirement for ``board``, from pyproject's ``stubs-<board>`` extra."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    (req,) = extras["stubs-" + board]
    return str(req)


def ensure_stubs(board: str, python: str = sys.executable) -> Path:
    """``.stubs/<board>`` with the stubs installed; pip runs only when missing or outdated.

    Installed into a temporary folder renamed into place, so an interrupted install is never
    taken for a complete one."""
    target = STUBS / board
    req = requirement(board)
    marker = target / _MARKER
    if marker.is_file() and marker.read_text().strip() == req:
        return target
    tmp = STUBS / (".%s.%d.tmp" % (board, os.getpid()))
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        print("installing %s into %s" % (req, target.relative_to(ROOT)), flush=True)
        pip = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              "--no-compile", "--target", str(tmp), req],
                             capture_output=True, text=True)
        if pip.returncode:
            sys.stderr.write(pip.stdout + pip.stderr)
            raise SystemExit("could not install %s (pip exit %d)" % (req, pip.returncode))
        (tmp / _MARKER).write_text(req + "\n")
        shutil.rmtree(target, ignore_errors=True)
        try:
            tmp.rename(target)
        except OSError:  # another run installed it meanwhile
            if not (target / _MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


MCU = "mcu.py"
MCU_BOARDS = ("esp32", "rp2")


def modules(board: str, firmware: Path = FIRMWARE) -> list[Path]:
    """The firmware files checked against ``board``'s stubs."""
    common = [p for p in sorted(firmware.rglob("*.py"))
              if not (p.parent == firmware and (p.name.startswith("hal_") or p.name == MCU))]
    hal = firmware / ("hal_%s.py" % board)
    shared = firmware / MCU  # what the machine-based boards share: not on the unix port
    return common + [p for p in (hal, shared) if p.exists() and (p is hal or board in MCU_BOARDS)]


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def mypy_command(board: str, stubs: Path, firmware: Path = FIRMWARE,
                 python: str = sys.executable) -> list[str]:
    # the project's firmware keeps a cache (a second run takes ~1 s); another tree does not
    cache = STUBS / ".mypy_cache" / board if firmware == FIRMWARE else Path(os.devnull)
    return [python, "-m", "mypy", "--config-file", str(CONFIG),
            "--custom-typeshed-dir", str(stubs), "--cache-dir", str(cache),
            *(_shown(p) for p in modules(board, firmware))]


def check(board: str, install: bool = True, firmware: Path = FIRMWARE) -> int:
    stubs = ensure_stubs(board) if install else STUBS / board
    env = dict(os.environ, MYPYPATH=str(stubs))
    print("== %s against micropython-%s-stubs" % (_shown(firmware), board), flush=True)
    return subprocess.run(mypy_command(board, stubs, firmware), cwd=ROOT, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--board", action="append", choices=BOARDS,
                        help="check only this board (repeatable; default: all)")
    parser.add_argument("--no-install", action="store_true",
                        help="use .stubs/<board> as it is (no pip)")
    parser.add_argument("--firmware", type=Path, default=FIRMWARE,
                        help="the firmware folder (default: firmware/)")
    args = parser.parse_args(argv)
    firmware = args.firmware.resolve()
    failed = [b for b in (args.board or BOARDS) if check(b, not args.no_install, firmware)]
    if failed:
        print("type errors against: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
