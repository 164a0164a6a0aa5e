"""``watershed station flash PORT --config site.json``: firmware and config onto a board.

mpremote (its SerialTransport, as a library) talks to the board's raw REPL: the board's
MicroPython must be the version the firmware is compiled for (.mpy ABI 6.3, MicroPython 1.25);
only files whose SHA-256 differs from the board's copy are written; then config.json, a soft
reset (main.py starts the station) and the station's first console status, printed as it
comes. Every step says what it does; a config the checker refuses is never written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

from watershed.firmware_build import MICROPYTHON_VERSION, MPY_ABI, compile_firmware
from watershed.station_tools import check

CONFIG_NAME = "config.json"
_VERSION_PROBE = ("import sys\nv=sys.implementation\n"
                  "print(v.version[0], v.version[1], v._mpy & 0xff, (v._mpy >> 8) & 3, "
                  "sys.platform)")
_BOARD_OF_PLATFORM = {"esp32": "esp32", "rp2": "rp2", "linux": "unix"}


class FlashError(RuntimeError):
    """The board or the config is not fit: the message says what and what would be right."""


def board_abi(transport: SerialTransport) -> tuple[str, str, str]:
    """(MicroPython version "1.25", .mpy ABI "6.3", board module name "esp32") of the board."""
    major, minor, mpy, sub, platform = transport.exec(_VERSION_PROBE).decode().split()
    return f"{major}.{minor}", f"{mpy}.{sub}", _BOARD_OF_PLATFORM.get(platform, platform)


def _remote_sha256(transport: SerialTransport, path: str) -> bytes | None:
    try:
        if not transport.fs_exists(path):
            return None
        return transport.fs_hashfile(path, "sha256")
    except TransportError:
        return None


def _ensure_dirs(transport: SerialTransport, path: str, made: set[str]) -> None:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if d not in made:
            if not transport.fs_exists(d):
                transport.fs_mkdir(d)
            made.add(d)


def sync(transport: SerialTransport, files: dict[str, bytes],
         say: Callable[[str], None]) -> list[str]:
    """Write the files whose content differs on the board; the paths written."""
    written: list[str] = []
    made: set[str] = set()
    for path, data in sorted(files.items()):
        if _remote_sha256(transport, path) == hashlib.sha256(data).digest():
            continue
        _ensure_dirs(transport, path, made)
        say(f"  writing {path} ({len(data)} bytes)")
        transport.fs_writefile(path, data)
        written.append(path)
    say(f"{len(written)} of {len(files)} files written, {len(files) - len(written)} unchanged")
    return written


def firmware_files(tree: Path) -> dict[str, bytes]:
    return {p.relative_to(tree).as_posix(): p.read_bytes()
            for p in sorted(tree.rglob("*")) if p.is_file()}


def checked_config(path: Path, board: str | None) -> bytes:
    """The config's bytes if the firmware's validator and the board's pin map accept it."""
    cfg, bad = check.check_file(path, board) if board else (None, [])
    if board is None:
        try:
            cfg = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise FlashError(f"{path}: cannot be read as JSON: {e}") from None
        bad = check.firmware_defects(cfg)
        name = cfg.get("board", {}).get("name") if isinstance(cfg, dict) else None
        if not bad and name in check.BOARDS:
            bad = check.board_defects(cfg, name)
    if bad:
        raise FlashError("\n".join(f"{path}: {k}: {w}" for k, w in bad)
                         + f"\n{path}: refused: nothing was written to the board")
    return path.read_bytes()


def first_status(transport: SerialTransport, timeout: float,
                 say: Callable[[str], None]) -> list[str]:
    """Soft-reset the board from its friendly REPL (main.py starts the station), wait for the
    station's start line, ask ``status`` on its console; the C lines up to "C ok"."""
    serial = transport.serial
    serial.timeout = 0.2  # the deadline below, not a read, bounds the wait
    transport.exit_raw_repl()
    serial.write(b"\x04")  # soft reset: boot.py, main.py
    deadline = time.monotonic() + timeout
    buf = b""
    asked = False
    lines: list[str] = []
    while time.monotonic() < deadline:
        buf += serial.read(serial.in_waiting or 1)
        while b"\n" in buf:
            raw, buf = buf.split(b"\n", 1)
            line = raw.decode(errors="replace").strip("\r")
            if line.startswith("station ") and not asked:
                say(line)
                serial.write(b"status\r\n")
                asked = True
            elif line.startswith(("E ", "I ", "Traceback")) or (line and not asked):
                say(line)
            elif asked and line.startswith("C "):
                if line == "C ok":
                    return lines
                lines.append(line)
    raise FlashError(f"no status from the station within {timeout:.0f} s (last: {buf[-200:]!r})")


def flash(port: str, config: Path, firmware: Path | None, board: str | None, timeout: float,
          say: Callable[[str], None] = print) -> list[str]:
    """Everything ``watershed station flash`` does; the station's first status lines."""
    config_bytes = checked_config(config, board)
    say(f"{config}: checked")
    with tempfile.TemporaryDirectory() as tmp:
        if firmware is None:
            say("building the firmware (mpy-cross)")
            firmware = compile_firmware(Path(tmp) / "firmware")
        files = firmware_files(firmware)
        files[CONFIG_NAME] = config_bytes
        say(f"connecting to {port}")
        transport = SerialTransport(port, baudrate=115200)
        try:
            transport.enter_raw_repl(soft_reset=True)
            version, abi, platform = board_abi(transport)
            say(f"board: MicroPython {version}, .mpy {abi}, {platform}")
            wanted = json.loads(config_bytes)["board"]["name"]
            if wanted != platform:
                say(f"warning: the config is for {wanted} but the board is {platform}: the "
                    "station will start in safe mode")
            if abi != MPY_ABI:
                raise FlashError(f"{port}: the board's MicroPython {version} loads .mpy {abi}; "
                                 f"the firmware is .mpy {MPY_ABI}: install MicroPython "
                                 f"{MICROPYTHON_VERSION} on the board first")
            sync(transport, files, say)
            say("resetting; waiting for the station")
            return first_status(transport, timeout, say)
        finally:
            transport.close()


def main(args: argparse.Namespace) -> int:
    try:
        status = flash(args.port, args.config, args.firmware, args.board, args.timeout)
    except FlashError as e:
        print(f"watershed station flash: {e}", file=sys.stderr)
        return 1
    except (TransportError, OSError) as e:
        print(f"watershed station flash: {args.port}: {e}", file=sys.stderr)
        return 1
    for line in status:
        print(line)
    return 0
