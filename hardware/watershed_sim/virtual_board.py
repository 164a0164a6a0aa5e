"""A virtual MicroPython board on a pty, for flashing tests: ``mpremote connect <path> ...``.

The pty speaks MicroPython's REPL protocol as a board's USB serial does (docs.micropython.org,
"The raw REPL" and "raw-paste mode"):

- friendly REPL ``>>> ``: Ctrl-A enters the raw REPL, Ctrl-B prints the banner, Ctrl-C drops
  the line, Ctrl-D soft-resets, a line is executed;
- raw REPL: Ctrl-A prints ``raw REPL; CTRL-B to exit\\r\\n>``, bytes collect into a block,
  Ctrl-D with a block answers ``OK``, runs it and sends its output, ``\\x04``, its error output,
  ``\\x04``, ``>``; Ctrl-D on an empty block is a soft reset (``soft reboot\\r\\n`` then the raw
  banner again); Ctrl-C drops the block; Ctrl-B goes back to the friendly REPL;
- raw-paste mode: ``\\x05A\\x01`` is answered ``R\\x01`` and the window size (u16 LE); the host
  sends at most a window, the board sends ``\\x01`` for each further window it has taken,
  ``\\x04`` ends the data (acknowledged with ``\\x04``), then the output as in the raw REPL;
- Ctrl-C while a block runs raises KeyboardInterrupt in it.

Behind the pty runs the real MicroPython unix port (it has no raw REPL of its own): one
persistent process, the *agent*, executes the blocks in one global namespace, so that state
carries from one block to the next as on a board (mpremote's ``fs cp`` opens a file in one
block and writes it in the next). Its filesystem is a littlefs2 image in a file (``os.VfsLfs2``
on a file-backed block device), mounted at ``/flash``, which is the current directory; a soft
reset starts a fresh agent on the same image, so files survive and variables do not.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import struct
import subprocess
import threading
from pathlib import Path

from .micropython import micropython_binary
from .serial_link import RawPty
from .waker import Waker

log = logging.getLogger(__name__)

CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 1, 2, 3, 4, 5
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
PASTE_WINDOW = 128  # bytes the host may send before the board asks for more
# After a soft reset from the friendly REPL a board runs main.py, if there is one.
RUN_MAIN = b"""import os
try:
    os.stat("main.py")
except OSError:
    pass
else:
    exec(open("main.py").read(), {"__name__": "__main__"})
"""
BLOCK_SIZE = 4096

# Runs in the unix port. Blocks arrive on stdin as "<length>\n<code>"; each answer is the
# block's output, \x04, its exception (if any), \x04: the raw REPL's own framing.
AGENT = r'''
import io, os, sys

class FileBlockDevice:
    """A flash chip in a file: littlefs's extended block interface (offsets, erase)."""
    def __init__(self, path, block_size):
        self.f = open(path, "r+b")
        self.bs = block_size
        self.f.seek(0, 2)
        self.n = self.f.tell() // block_size

    def readblocks(self, n, buf, off=0):
        self.f.seek(n * self.bs + off)
        self.f.readinto(buf)

    def writeblocks(self, n, buf, off=0):
        self.f.seek(n * self.bs + off)
        self.f.write(buf)
        self.f.flush()

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        if op == 6:
            self.f.seek(arg * self.bs)
            self.f.write(b"\xff" * self.bs)
            return 0
        if op == 3:
            self.f.flush()
        return 0

bdev = FileBlockDevice(sys.argv[1], int(sys.argv[2]))
try:
    vfs = os.VfsLfs2(bdev)
except OSError:
    os.VfsLfs2.mkfs(bdev)
    vfs = os.VfsLfs2(bdev)
os.mount(vfs, "/flash")
os.chdir("/flash")
sys.path.insert(0, "/flash")  # modules on the flash, as a board imports them
del bdev, vfs, FileBlockDevice

def _serve():
    inp = sys.stdin.buffer
    out = sys.stdout
    g = {"__name__": "__main__"}
    while True:
        try:
            line = inp.readline()
            if not line:
                return
            n = int(line)
            code = b""
            while len(code) < n:
                more = inp.read(n - len(code))
                if not more:
                    return
                code += more
        except (KeyboardInterrupt, ValueError):  # a Ctrl-C, or console input left unread
            continue
        try:
            exec(code.decode(), g)
        except BaseException as e:
            text = io.StringIO()
            sys.print_exception(e, text)
            out.write("\x04")  # without the agent's own frame, as a board would print it
            out.write("".join(l for l in text.getvalue().splitlines(True)
                              if "agent.py" not in l))
            out.write("\x04")
        else:
            out.write("\x04\x04")

_serve()
'''


class VirtualBoard:
    """A board on ``path``; its flash is the littlefs image ``workdir/flash.img``."""

    def __init__(self, workdir: Path, flash_bytes: int = 1 << 20, heap: str = "256K") -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.image = self.workdir / "flash.img"
        if not self.image.exists():
            self.image.write_bytes(b"\xff" * flash_bytes)  # an erased chip
        self.agent_path = self.workdir / "agent.py"
        self.agent_path.write_text(AGENT)
        self.heap = heap
        self.soft_resets = 0
        self._pty = RawPty()
        self._agent: subprocess.Popen[bytes] | None = None
        self._out_thread: threading.Thread | None = None
        self._done = threading.Event()
        self._raw_output = True  # the running block's output keeps the raw framing
        self._stopping = False
        self._waker = Waker()  # ends a read's wait at close()
        self._write_lock = threading.Lock()
        self._start_agent()
        self._thread = threading.Thread(target=self._run, name="virtual-board", daemon=True)
        self._thread.start()

    @property
    def path(self) -> str:
        return self._pty.path

    def close(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._waker.wake()
        self._thread.join(5)
        self._stop_agent()
        self._pty.close()
        self._waker.close()

    def __enter__(self) -> VirtualBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the agent (the unix port) ----------------------------------------------------------

    def _start_agent(self) -> None:
        self._agent = subprocess.Popen(
            [str(micropython_binary()), "-X", f"heapsize={self.heap}", str(self.agent_path),
             str(self.image), str(BLOCK_SIZE)],
            cwd=self.workdir, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(self.workdir / "agent.log", "ab"))
        self._out_thread = threading.Thread(target=self._forward_output, args=(self._agent,),
                                            name="virtual-board-out", daemon=True)
        self._out_thread.start()

    def _stop_agent(self) -> None:
        agent, self._agent = self._agent, None
        if agent is None:
            return
        agent.kill()
        agent.wait(10)
        if self._out_thread is not None:
            self._out_thread.join(5)
        for stream in (agent.stdin, agent.stdout):
            if stream is not None:
                stream.close()

    def _forward_output(self, agent: subprocess.Popen[bytes]) -> None:
        """The agent's answers to the pty; ``_done`` once a block's second \\x04 has gone out."""
        assert agent.stdout is not None
        ends = 0
        while True:
            data = os.read(agent.stdout.fileno(), 4096)
            if not data:
                if ends:  # the agent died mid-block: end the answer so the host is not stuck
                    self._write(b"\x04" * (2 - ends) if self._raw_output else b"")
                self._done.set()
                return
            if self._raw_output:
                self._write(data)
            else:
                self._write(data.replace(b"\x04", b"").replace(b"\n", b"\r\n"))
            ends += data.count(b"\x04")
            if ends >= 2:
                ends = 0
                self._done.set()

    def _soft_reset(self) -> None:
        self.soft_resets += 1
        self._stop_agent()
        self._start_agent()

    # --- the pty ----------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self._pty.master_fd, view)
                except BlockingIOError:
                    select.select([], [self._pty.master_fd], [], 0.1)
                    continue
                view = view[n:]

    def _read(self, timeout: float | None = None) -> bytes:
        """Bytes from the host; b"" when stopping or nothing came in ``timeout``."""
        woken = self._waker.fileno()
        ready, _, _ = select.select([self._pty.master_fd, woken], [], [], timeout)
        if woken in ready or self._pty.master_fd not in ready:
            return b""
        try:
            return os.read(self._pty.master_fd, 4096)
        except OSError:
            return b""

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:
            if not self._stopping:
                log.exception("virtual board failed")

    def _loop(self) -> None:
        raw = False
        line = bytearray()
        pending = bytearray()  # bytes not yet handled
        while not self._stopping:
            if not pending:
                pending += self._read()
                continue
            c = pending.pop(0)
            if raw:
                if c == CTRL_A:
                    if line == b"\x05A":
                        line.clear()
                        code = self._raw_paste(pending)
                        if code is not None:
                            self._execute(bytes(code), pending, raw=True)
                            self._write(b">")
                        continue
                    line.clear()
                    self._write(b"\r\n" + RAW_BANNER + b">")
                elif c == CTRL_B:
                    raw = False
                    line.clear()
                    self._write(b"\r\n" + self._banner() + b">>> ")
                elif c == CTRL_C:
                    line.clear()
                elif c == CTRL_D:
                    if not line:
                        self._write(b"soft reboot\r\n")
                        self._soft_reset()
                        self._write(RAW_BANNER + b">")
                        continue
                    self._write(b"OK")
                    self._execute(bytes(line), pending, raw=True)
                    line.clear()
                    self._write(b">")
                else:
                    line.append(c)
            else:
                if c == CTRL_A:
                    raw = True
                    line.clear()
                    self._write(b"\r\n" + RAW_BANNER + b">")
                elif c == CTRL_B:
                    line.clear()
                    self._write(b"\r\n" + self._banner() + b">>> ")
                elif c == CTRL_C:
                    line.clear()
                    self._write(b"\r\n>>> ")
                elif c == CTRL_D:
                    line.clear()
                    self._write(b"\r\nMPY: soft reboot\r\n")
                    self._soft_reset()
                    self._execute(RUN_MAIN, pending, raw=False, console=True)
                    self._write(self._banner() + b">>> ")
                elif c in (0x0D, 0x0A):
                    self._write(b"\r\n")
                    if line.strip():
                        self._execute(bytes(line), pending, raw=False)
                    line.clear()
                    self._write(b">>> ")
                elif c in (0x08, 0x7F):
                    if line:
                        line.pop()
                        self._write(b"\x08 \x08")
                elif c >= 0x20:
                    line.append(c)
                    self._write(bytes([c]))

    def _raw_paste(self, pending: bytearray) -> bytearray | None:
        """Take a raw-paste block (after ``\\x05A\\x01``); None if the host cancelled it."""
        self._write(b"R\x01" + struct.pack("<H", PASTE_WINDOW))
        code = bytearray()
        taken = 0
        while not self._stopping:
            if not pending:
                pending += self._read()
                continue
            c = pending.pop(0)
            if c == CTRL_D:
                self._write(b"\x04")
                return code
            if c == CTRL_C:
                self._write(b"\x04")  # the board ends the paste abruptly
                return None
            code.append(c)
            taken += 1
            if taken == PASTE_WINDOW:
                taken = 0
                self._write(b"\x01")
        return None

    def _execute(self, code: bytes, pending: bytearray, raw: bool, console: bool = False
                 ) -> None:
        """Run ``code`` in the agent, its answer going out as it comes; Ctrl-C interrupts it.
        Other bytes the host sends meanwhile wait in ``pending``; with ``console`` (main.py
        running) they are the program's stdin, lines ended by Enter (CR) as on a board."""
        agent = self._agent
        if agent is None or agent.stdin is None or agent.poll() is not None:
            self._write(b"\x04unix port agent is not running\r\n\x04" if raw else b"")
            self._soft_reset()
            return
        self._raw_output = raw
        self._done.clear()
        try:
            agent.stdin.write(b"%d\n" % len(code) + code)
            agent.stdin.flush()
        except OSError:
            self._write(b"\x04agent gone\r\n\x04" if raw else b"")
            self._soft_reset()
            return
        while not self._done.wait(0.01) and not self._stopping:
            data = self._read(0.05)
            if CTRL_C in data:
                agent.send_signal(signal.SIGINT)
                data = data[data.index(CTRL_C) + 1:]
                console = False  # what follows is for the REPL
            if console and data:
                try:
                    agent.stdin.write(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n"))
                    agent.stdin.flush()
                except OSError:
                    pass
            else:
                pending += data

    def _banner(self) -> bytes:
        return (b"MicroPython (unix port) on a watershed virtual board; flash: littlefs2\r\n"
                b"Type \"help()\" for more information.\r\n")
