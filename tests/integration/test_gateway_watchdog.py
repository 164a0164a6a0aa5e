"""The systemd watchdog is fed only while every loop goes round: the daemon process, with
NOTIFY_SOCKET on a real unix datagram socket, stops sending WATCHDOG=1 while one of its threads
is stuck, and starts again when it moves on (systemd would have restarted it by then)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from watershed_sim.serial_link import VirtualSerialLink

from .test_gateway_end_to_end import REPO, _toml, config_dict

pytestmark = pytest.mark.integration

STALE_S = 1.0  # the daemon's STALE_LOOP_S (120 s), shortened for the test
WATCHDOG_USEC = 400_000  # fed every 0.2 s while healthy

# Runs the daemon with one loop that blocks while the file STALL exists: a link stuck in a
# driver call, or a forwarder stuck in the network, as a real hang would look.
DAEMON = """
import os, sys, time
from watershed.gateway import daemon, forwarder, link
daemon.STALE_LOOP_S = {stale}
daemon.HOUSEKEEPING_INTERVAL_S = 0.2  # its loop beats once a turn: a turn well within STALE
stall, where = sys.argv[2], sys.argv[3]
cls, name = {{"link": (link.SerialLink, "_poll_cycle"),
             "forwarder": (forwarder.Forwarder, "step")}}[where]
original = getattr(cls, name)
def stuck(self, *args):
    while os.path.exists(stall):
        time.sleep(0.05)
    return original(self, *args)
setattr(cls, name, stuck)
sys.exit(daemon.run(sys.argv[1]))
"""


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    yield path, sock
    sock.close()


def datagrams(sock: socket.socket, seconds: float) -> list[tuple[float, str]]:
    """Every datagram that arrives within ``seconds``, with its arrival time."""
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            out.append((time.monotonic(), sock.recv(4096).decode()))
        except TimeoutError:
            break
    return out


def watchdogs(received: list[tuple[float, str]]) -> list[float]:
    return [t for t, text in received if "WATCHDOG=1" in text.split("\n")]


@pytest.mark.parametrize("where", ["link", "forwarder"])
def test_the_watchdog_starves_while_a_loop_is_stuck_and_is_fed_again_after(
        tmp_path: Path, mosquitto, notify_socket, where: str) -> None:
    path, sock = notify_socket
    stall = tmp_path / "stall"
    with VirtualSerialLink() as link:
        d = config_dict(tmp_path, f"gw-{uuid.uuid4().hex[:8]}", mosquitto.port, link.gateway_path)
        d["link"][0].update(stations=[3], reply_timeout_s=0.1)  # nobody answers: timeouts only
        config = tmp_path / "gateway.toml"
        config.write_text(_toml(d))
        env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(WATCHDOG_USEC),
               "PYTHONPATH": os.pathsep.join([str(REPO / "gateway"), str(REPO / "hardware"),
                                              str(REPO)])}
        env.pop("WATCHDOG_PID", None)
        process = subprocess.Popen(
            [sys.executable, "-c", DAEMON.format(stale=STALE_S), str(config), str(stall), where],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            sock.settimeout(30)
            assert "READY=1" in sock.recv(4096).decode().split("\n")
            healthy = datagrams(sock, 1.5)
            assert len(watchdogs(healthy)) >= 3, healthy  # fed while every loop goes round

            stall.touch()
            stalled_at = time.monotonic()
            during = datagrams(sock, STALE_S + 3.0)
            # A turn already under way may still beat; once STALE_S has passed, nothing.
            late = [t for t in watchdogs(during) if t > stalled_at + STALE_S + 0.5]
            assert late == [], during
            assert process.poll() is None  # the process is alive: only the watchdog knows

            stall.unlink()
            after = datagrams(sock, 2.0)
            assert watchdogs(after), after  # moving again: fed again

            process.terminate()
            output, _ = process.communicate(timeout=30)
            assert process.returncode == 0, output
            assert "STOPPING=1" in "\n".join(text for _, text in datagrams(sock, 0.5))
            # Only the stuck loop is named.
            stuck = f"link {link.gateway_path}" if where == "link" else "forwarder"
            assert f'msg="loops not running: {stuck}; not feeding the watchdog"' in output
            assert output.count("not feeding the watchdog") == output.count(
                f"loops not running: {stuck};"), output
        finally:
            if stall.exists():
                stall.unlink()
            if process.poll() is None:
                process.kill()
                process.wait(5)
