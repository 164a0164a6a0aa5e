"""The virtual board: mpremote against the raw REPL on a pty, the unix port behind it, littlefs
as its flash. Plus the raw REPL's bytes themselves, as the MicroPython docs give them."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.micropython import micropython_binary
from watershed_sim.virtual_board import RAW_BANNER, VirtualBoard

pytestmark = pytest.mark.firmware

MPREMOTE = Path(sys.executable).parent / "mpremote"


@pytest.fixture
def board(tmp_path):
    micropython_binary()  # fails with how to build it when missing
    with VirtualBoard(tmp_path / "board") as b:
        yield b


def mpremote(board: VirtualBoard, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MPREMOTE), "connect", board.path, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_mpremote_copies_a_file_reads_it_back_and_lists_it(board, tmp_path):
    text = "station = 'SAN-01'\nbasin = 'santiago'  # páramo\n" * 50  # several raw-paste windows
    (tmp_path / "config.py").write_text(text)
    r = mpremote(board, "fs", "cp", "config.py", ":config.py", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    back = mpremote(board, "fs", "cat", "config.py", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert back.stdout == text
    listed = mpremote(board, "fs", "ls", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert f"{len(text.encode())} config.py" in listed.stdout
    r = mpremote(board, "fs", "cp", ":config.py", "copy.py", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "copy.py").read_text() == text


def test_files_live_in_a_littlefs_image_and_survive_a_soft_reset(board, tmp_path):
    r = mpremote(board, "exec", "x = 42\nwith open('kept.txt', 'w') as f: f.write('flash')",
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = mpremote(board, "exec", "import os; print(type(os.statvfs('/flash')), os.getcwd())",
                 cwd=tmp_path)
    assert r.stdout.split()[-1] == "/flash"
    assert mpremote(board, "soft-reset", cwd=tmp_path).returncode == 0
    r = mpremote(board, "resume", "exec", "print(open('kept.txt').read(), 'x' in globals())",
                 cwd=tmp_path)
    assert r.stdout.split() == ["flash", "False"]  # the file stayed, the variable did not
    assert board.soft_resets >= 2  # mpremote soft-resets on connect, and when asked
    image = board.image.read_bytes()
    assert b"littlefs" in image and b"kept.txt" in image


def test_mpremote_exec_reports_the_error_of_a_failing_block(board, tmp_path):
    r = mpremote(board, "exec", "print('before'); 1 / 0", cwd=tmp_path)
    assert r.returncode == 1
    assert "before" in r.stdout and "ZeroDivisionError" in r.stdout
    assert "agent.py" not in r.stdout  # the board's traceback, not the harness's


class Host:
    """The host side of the pty, byte by byte."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def until(self, end: bytes, timeout: float = 20) -> bytes:
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(end):
            left = deadline - time.monotonic()
            assert left > 0, f"waited for {end!r}, got {data!r}"
            if select.select([self.fd], [], [], left)[0]:
                data += os.read(self.fd, 1)
        return data

    def close(self) -> None:
        os.close(self.fd)


def test_raw_repl_protocol_bytes(board):
    host = Host(board.path)
    try:
        host.send(b"\r\x01")
        host.until(RAW_BANNER + b">")
        host.send(b"print(6 * 7)\x04")
        assert host.until(b"\x04>") == b"OK42\n\x04\x04>"
        host.send(b"raise ValueError('bad')\x04")
        out = host.until(b"\x04>")
        assert out.startswith(b"OK\x04") and b"ValueError: bad" in out and out.endswith(b"\x04>")
        # raw-paste: R\x01 and the window, \x01 per further window, \x04 acknowledged
        host.send(b"\x05A\x01")
        assert host.until(b"R\x01") == b"R\x01"
        window = int.from_bytes(os.read(host.fd, 2), "little")
        assert window >= 32
        code = b"s = 'w' * 3\n" + b"#" * (window * 2) + b"\nprint(s)"
        host.send(code[:window])
        assert host.until(b"\x01") == b"\x01"
        host.send(code[window:] + b"\x04")
        assert host.until(b"\x04>").replace(b"\x01", b"") == b"\x04www\n\x04\x04>"
        # Ctrl-C interrupts a running block; the board stays usable
        host.send(b"import time\nwhile True: time.sleep(0.01)\x04")
        host.until(b"OK")
        time.sleep(0.3)
        host.send(b"\x03")
        out = host.until(b"\x04>")
        assert b"KeyboardInterrupt" in out
        host.send(b"print(s)\x04")
        assert host.until(b"\x04>") == b"OKwww\n\x04\x04>"
        # Ctrl-D on an empty block: soft reset, back in the raw REPL
        host.send(b"\x04")
        host.until(b"soft reboot\r\n" + RAW_BANNER + b">")
        host.send(b"print('s' in globals())\x04")
        assert host.until(b"\x04>") == b"OKFalse\n\x04\x04>"
        # Ctrl-B: the friendly REPL, lines echoed and run
        host.send(b"\x02")
        host.until(b">>> ")
        host.send(b"print(1 + 1)\r")
        assert host.until(b">>> ").endswith(b"2\r\n>>> ")
    finally:
        host.close()
