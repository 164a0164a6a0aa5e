"""The gateway in a process of its own, as on a Pi: ``GatewayProcess`` (the harness's side) and
``main`` (the gateway's).

In the harness's process the gateway's links, store and forwarder shared one interpreter lock
with every simulated device, bus hub and console reader: in a 50-station fleet that process
was the pace. Here the gateway runs the real ``watershed.gateway.daemon.Gateway`` under its
own interpreter, and the harness clock (clock.HarnessClock) reaches it as in one process:

- the simulated time and the links' clock through shared memory (clock.SharedTime), read as
  the harness writes it;
- per link, one socket pair used by that link's thread only, in order: ``cycle`` (the barrier:
  ``before_cycle``, answered when time has moved), ``poll`` (a POLL is being written: the
  harness notes it before the link can reach the barrier again) and ``quiet`` (whether a reply
  can still come: ``link_quiet``);
- a control socket for what the harness asks of the gateway: its stats, its quarantine, an
  operator's release of a quarantine entry, and stop.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import watershed

from .clock import HarnessClock, SharedTime, poll_watched

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 60.0  # the gateway's own stop: its links, a flush of the forwarder, the store


class GatewayProcess:
    """The harness's handle on the gateway process: ``start``, ``stats``, ``quarantine_entries``,
    ``release_quarantine``, ``stop``. ``config``: the gateway's config as a dict
    (GatewayConfig.from_dict)."""

    def __init__(self, config: dict[str, Any], clock: HarnessClock) -> None:
        self.config = config
        self.clock = clock
        self._process: subprocess.Popen[bytes] | None = None
        self._control: Connection | None = None
        self._control_lock = threading.Lock()
        self._servers: list[threading.Thread] = []

    def start(self) -> None:
        ports = [link["port"] for link in self.config["link"]]
        pairs = {port: socket.socketpair() for port in ports}
        control, control_child = socket.socketpair()
        child_fds = [control_child.fileno()] + [pairs[p][1].fileno() for p in ports]
        # the packages this process runs, wherever they are imported from
        paths = [str(Path(watershed.__file__ or "").resolve().parents[1]),
                 str(Path(__file__).resolve().parents[1])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            paths + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        # its log lines go where the harness's go (stderr), at the harness's level
        self._process = subprocess.Popen(
            [sys.executable, "-m", "watershed_sim.gateway_host", str(self.clock.time_map.path),
             str(self.clock.speed), ",".join(str(fd) for fd in child_fds),
             str(logging.getLogger().getEffectiveLevel())],
            pass_fds=child_fds, env=env)
        for end in [control_child] + [pairs[p][1] for p in ports]:
            end.close()
        self._control = Connection(control.detach())
        for port in ports:
            conn = Connection(pairs[port][0].detach())
            thread = threading.Thread(target=self._serve_link, args=(port, conn),
                                      name="gateway-link-proxy", daemon=True)
            thread.start()
            self._servers.append(thread)
        try:
            self._ask("start", self.config)
        except RuntimeError:
            self._process.wait(STOP_TIMEOUT_S)  # it ends on its own: nothing to stop
            raise

    def stats(self) -> dict[str, Any]:
        return self._ask("stats")

    def quarantine_entries(self) -> list[dict[str, Any]]:
        return self._ask("quarantine")

    def release_quarantine(self, claimed: str, station: str) -> None:
        """What an operator does on the identity alert once the station is right again:
        ``watershed gateway quarantine release ID --to STATION`` for each entry of
        ``claimed`` bound to ``station``."""
        self._ask("release", claimed, station)

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:  # else it ended already (a start that failed)
            try:
                self._ask("stop")
            except (RuntimeError, OSError) as exc:
                log.error("gateway process: no answer to stop (%s)", exc)
        try:
            self._process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.error("gateway process still running %.0f s after stop: killed", STOP_TIMEOUT_S)
            self._process.kill()
            self._process.wait()
        assert self._control is not None
        self._control.close()
        for thread in self._servers:
            thread.join(5)
        self._process = None

    def _ask(self, *request: Any) -> Any:
        assert self._control is not None
        with self._control_lock:
            self._control.send(request)
            try:
                ok, answer = self._control.recv()
            except EOFError:
                raise RuntimeError(f"gateway process ended (exit status "
                                   f"{self._process and self._process.poll()}) before it "
                                   f"answered {request[0]}; its last lines are above") from None
        if not ok:
            raise RuntimeError(f"gateway process: {request[0]} failed: {answer}")
        return answer

    def _serve_link(self, port: str, conn: Connection) -> None:
        """One link's requests, in the order its thread made them, until the gateway ends."""
        clock = self.clock
        try:
            while True:
                what = conn.recv()
                if what == "cycle":
                    conn.send(clock.before_cycle(port))
                elif what == "quiet":
                    conn.send(clock.link_quiet(port))
                else:  # ("poll", address)
                    clock.on_poll(port, what[1])
        except (EOFError, OSError):
            pass
        finally:
            conn.close()


# --- the gateway's process ---------------------------------------------------------------------

class _LinkCalls:
    """One link's calls to the harness (GatewayProcess._serve_link), from its thread only."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def before_cycle(self) -> bool:
        self._conn.send("cycle")
        return bool(self._conn.recv())

    def on_poll(self, addr: int) -> None:
        self._conn.send(("poll", addr))

    def quiet(self) -> bool:
        self._conn.send("quiet")
        return bool(self._conn.recv())


def main(argv: list[str]) -> int:
    from watershed.gateway.config import GatewayConfig
    from watershed.gateway.daemon import Gateway
    from watershed.gateway.link import open_serial_port

    shared_path, speed, fds, level = argv
    logging.basicConfig(level=int(level), format="gateway: %(levelname)s %(name)s: %(message)s")
    shared = SharedTime(Path(shared_path), int(speed))
    control_fd, *link_fds = (int(fd) for fd in fds.split(","))
    control = Connection(control_fd)
    _, config_dict = control.recv()  # ("start", the config)
    config = GatewayConfig.from_dict(config_dict)
    links = {link.port: _LinkCalls(Connection(fd)) for link, fd in zip(config.links, link_fds)}

    opened = poll_watched(open_serial_port, lambda port, addr: links[port].on_poll(addr),
                          lambda port: links[port].quiet())
    try:
        gateway = Gateway(config, clock=shared.now, open_port=opened,
                          before_cycle=lambda port: links[port].before_cycle(),
                          link_monotonic=shared.link_monotonic)
        gateway.start()
    except Exception as exc:
        control.send((False, f"{type(exc).__name__}: {exc}"))
        return 1
    control.send((True, None))
    answers: dict[str, Callable[..., Any]] = {
        "stats": gateway.stats,
        "quarantine": lambda: _quarantine(gateway),
        "release": lambda claimed, station: _release(gateway, claimed, station),
    }
    while True:
        try:
            what, *args = control.recv()
        except EOFError:  # the harness is gone
            gateway.stop()
            return 1
        if what == "stop":
            gateway.stop()
            control.send((True, None))
            return 0
        try:
            control.send((True, answers[what](*args)))
        except Exception as exc:  # said to the harness, which raises it there
            control.send((False, f"{type(exc).__name__}: {exc}"))


def _quarantine(gateway: Any) -> list[dict[str, Any]]:
    """The quarantine entries, open and settled: kind, ids, readings, outcome."""
    return [{"kind": e.kind, "bound": e.bound, "claimed": e.claimed, "address": e.address,
             "readings": e.readings, "state": e.state, "settled_to": e.settled_to}
            for e in gateway.store.quarantine_entries(state=None)]


def _release(gateway: Any, claimed: str, station: str) -> None:
    for entry in gateway.quarantine.entries():
        if entry.claimed == claimed and entry.bound == station:
            gateway.quarantine.release(entry.id, station)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
