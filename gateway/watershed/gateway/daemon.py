"""The gateway daemon: one store, one polling thread per serial link, one forwarder.

    station ─serial─▶ SerialLink ─add─▶ Store ─unsent─▶ Forwarder ─QoS 1─▶ broker
                          ◀── ACK ──┘        ◀── mark_sent on PUBACK ──┘

``run(config_path)`` is what ``watershed gateway --config FILE`` calls; it blocks until SIGTERM
or SIGINT and stops cleanly: polling ends first (no reading is left stored but un-ACKed
mid-exchange), then the forwarder flushes and publishes the offline status.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import ConfigError, GatewayConfig, LinkConfig, load_config
from .forwarder import Forwarder
from .framed_port import SerialPort
from .link import SerialLink, open_serial_port
from .store import Store, StoreError

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_STORE = 1  # the store cannot be opened (permissions, disk, a newer schema)
EXIT_CONFIG = 2  # bad configuration: restarting will not help, the supervisor should not loop


class Gateway:
    """Wires the store, the links and the forwarder together; ``start``, ``stop``, ``stats``."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        open_port: Callable[[LinkConfig], SerialPort] = open_serial_port,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._open_port = open_port
        self._clock = clock
        self.store: Store | None = None
        self.forwarder: Forwarder | None = None
        self.links: list[SerialLink] = []
        self._started_at: float | None = None

    def start(self) -> None:
        config = self.config
        self.store = Store(config.store, clock=self._clock)
        self.forwarder = Forwarder(config.id, config.mqtt, self.store, clock=self._clock)
        registry = {station.id: station for station in config.stations}
        self.links = [SerialLink(link, self.store, registry, time_sync=config.time_sync,
                                 on_stored=self.forwarder.notify, open_port=self._open_port,
                                 clock=self._clock)
                      for link in config.links]
        self._warn_unpolled_stations()
        backlog = self.store.counts()["unsent"]
        log.info("gateway %s starting: store %s (%d readings waiting), %d link(s), broker %s:%d",
                 config.id, config.store, backlog, len(self.links), config.mqtt.host,
                 config.mqtt.port)
        self.forwarder.start()
        for link in self.links:
            link.start()
        self._started_at = time.monotonic()

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        for link in self.links:
            link.stop()
        if self.forwarder is not None:
            self.forwarder.stop(flush_timeout_s)
        if self.store is not None:
            self.store.close()
            self.store = None
        log.info("gateway %s stopped", self.config.id)

    def stats(self) -> dict[str, Any]:
        uptime = 0.0 if self._started_at is None else time.monotonic() - self._started_at
        return {
            "gateway": self.config.id,
            "uptime_s": round(uptime, 1),
            "links": {link.config.port: link.stats() for link in self.links},
            "forwarder": self.forwarder.stats() if self.forwarder else {},
            "store": self.store.counts() if self.store else {},
        }

    def _warn_unpolled_stations(self) -> None:
        polled = {addr for link in self.config.links for addr in link.stations}
        for station in self.config.stations:
            if station.address not in polled:
                log.warning("station %s (address %d) is registered but no link polls its address",
                            station.id, station.address)


def run(config_path: str | Path) -> int:
    """Run the gateway until SIGTERM or SIGINT; returns the process exit code."""
    _configure_logging()
    try:
        config = load_config(config_path)
    except ConfigError as e:
        log.error("%s", e)
        return EXIT_CONFIG
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    gateway = Gateway(config)
    try:
        try:
            gateway.start()
        except (StoreError, OSError, sqlite3.Error) as e:
            log.error("cannot open the store %s: %s", config.store, e)
            return EXIT_STORE
        while not stop.wait(1.0):
            pass
    finally:
        gateway.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:  # the CLI or a test may have set logging up already
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
