"""The gateway daemon: one store, one polling thread per serial link, one forwarder.

    station ─serial─▶ SerialLink ─add─▶ Store ─unsent─▶ Forwarder ─QoS 1─▶ broker ─▶ ingest
                          ◀── ACK ──┘        ◀── confirmed (…/confirm) ──────────────┘
                          └─▶ AlertEngine ─▶ store alerts ─▶ (published first)

``run(config_path)`` is what ``watershed gateway --config FILE`` calls; it blocks until SIGTERM
or SIGINT and stops cleanly: polling ends first (no reading is left stored but un-ACKed
mid-exchange), then the forwarder flushes and publishes the offline status. SIGHUP reloads the
config (a bad file is reported and the running config kept). Under systemd it says READY=1 and
feeds the watchdog only while every loop has gone round recently.
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

from watershed.metrics_http import serve

from watershed import logs
from .alarms import ALARM_INTERVAL_S, AlarmMonitor, observer
from .alert_commands import AlertCommands
from .alerts import AlertEngine
from .clock_sync import ClockSync
from .config import ConfigError, GatewayConfig, LinkConfig, load_config, missing_files
from .forwarder import Forwarder
from .framed_port import SerialPort
from .health import gather_health, write_health_file
from .identity import BusRegistry
from .link import SerialLink, open_serial_port
from .metrics import collector
from watershed.notify import SystemdNotifier, watchdog_interval_s
from .quarantine import Quarantine
from .remote import RemoteOperations
from .store import Store, StoreError, StoreFull

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_STORE = 1  # the store cannot be opened (permissions, disk, a newer schema)
EXIT_CONFIG = 2  # bad configuration (a TLS file missing too): restarting will not help, the
#                 supervisor should not loop (the units' RestartPreventExitStatus=2)

HOUSEKEEPING_INTERVAL_S = 30.0
STALE_LOOP_S = 120.0  # a loop that has not gone round for this long is stuck: starve the watchdog


class Gateway:
    """Wires the store, the links and the forwarder together; ``start``, ``stop``, ``stats``."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        open_port: Callable[[LinkConfig], SerialPort] = open_serial_port,
        clock: Callable[[], float] = time.time,
        clock_sync: ClockSync | None = None,
        disk_free: Callable[[], int | None] | None = None,
        before_cycle: Callable[[str], bool] | None = None,
        link_monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._open_port = open_port
        # a simulation's clock, where the links' poll cycles begin and on which their
        # schedules run (SerialLink)
        self._before_cycle = before_cycle
        self._link_monotonic = link_monotonic
        self._clock = clock
        self.clock_sync = clock_sync or ClockSync.of(config.time_source)
        self._disk_free = disk_free
        self.commands = AlertCommands()
        self.alarms: AlarmMonitor | None = None
        self.store: Store | None = None
        self.forwarder: Forwarder | None = None
        self.alerts: AlertEngine | None = None
        self.quarantine: Quarantine | None = None
        self.links: list[SerialLink] = []
        self._started_at: float | None = None
        self._stopping = threading.Event()
        self._housekeeping = threading.Thread(target=self._housekeep, name="housekeeping",
                                              daemon=True)
        self._housekeeping_beat = time.monotonic()
        self._health_file_failed = False
        self._metrics: Any = None

    def start(self) -> None:
        config = self.config
        self._started_at = time.monotonic()
        self.store = Store(config.store, clock=self._clock, quota_bytes=config.store_quota_bytes,
                           protected_events=config.protected_event_readings)
        registry = {station.id: station for station in config.stations}
        self.quarantine = Quarantine(config.id, self.store, registry,
                                     on_alert=self._notify_forwarder, clock=self._clock)
        remote = RemoteOperations(config, self.links, self._publish_result, self._clock,
                                  quarantine=self.quarantine, store=self.store)
        self.forwarder = Forwarder(config.id, config.mqtt, self.store, clock=self._clock,
                                   health=self.health, health_interval_s=config.health_interval_s,
                                   on_command=remote.handle)
        self.alerts = AlertEngine(config.id, registry, self.store, on_alert=self.forwarder.notify,
                                  clock=self._clock, commands=self.commands,
                                  space_command=config.alarms.command)
        self.store.space.subscribe(self.alerts.on_store_space)
        identity = BusRegistry(self.store, config.links, config.stations)
        self.links.extend(SerialLink(link, self.store, registry, time_sync=config.time_sync,
                                     clock_synchronised=self.clock_sync.synchronised,
                                     on_stored=self.forwarder.notify,
                                     on_readings=self.alerts.evaluate, open_port=self._open_port,
                                     clock=self._clock, identity=identity,
                                     quarantine=self.quarantine,
                                     before_cycle=self._before_cycle,
                                     monotonic=self._link_monotonic)
                          for link in config.links)
        forwarder = self.forwarder
        self.alarms = AlarmMonitor(config, self.store, observer(
            config, self.store, self.links, self.clock_sync,
            lambda: forwarder.last_confirmation_at, started_at=self._clock(), clock=self._clock,
            disk_free=self._disk_free), commands=self.commands, on_alert=self.forwarder.notify,
            clock=self._clock)
        self._warn_unpolled_stations()
        backlog = self.store.counts()["unsent"]
        log.info("gateway %s starting: store %s (%d readings waiting, quota %d bytes), %d link(s),"
                 " broker %s:%d", config.id, config.store, backlog, config.store_quota_bytes,
                 len(self.links), config.mqtt.host, config.mqtt.port)
        self.forwarder.start()
        for link in self.links:
            link.start()
        self._housekeeping.start()
        if config.metrics_port:
            try:
                self._metrics = serve(config.metrics_port, "watershed_gateway",
                                      collector(self._health_with_forwarder))
            except OSError as e:  # readings matter more than metrics: run on without them
                log.error("no metrics: cannot listen on 127.0.0.1:%d (%s)", config.metrics_port,
                          e)

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
            self._metrics = None
        for link in self.links:
            link.stop()
        if self.forwarder is not None:
            self.forwarder.stop(flush_timeout_s)
        if self._housekeeping.is_alive():
            self._housekeeping.join(10)
        self.commands.wait(5)
        if self.store is not None:
            self.store.close()
            self.store = None
        log.info("gateway %s stopped", self.config.id)

    def _notify_forwarder(self) -> None:
        if self.forwarder is not None:
            self.forwarder.notify()

    def _publish_result(self, payload: bytes) -> None:
        if self.forwarder is not None:
            self.forwarder.publish_result(payload)

    def stats(self) -> dict[str, Any]:
        uptime = 0.0 if self._started_at is None else time.monotonic() - self._started_at
        return {
            "gateway": self.config.id,
            "uptime_s": round(uptime, 1),
            "links": {link.config.port: link.stats() for link in self.links},
            "forwarder": self.forwarder.stats() if self.forwarder else {},
            "store": self.store.counts() if self.store else {},
            "space": self.store.space.health() if self.store else {},
            "losses": self.store.loss_ledger() if self.store else {},
        }

    def health(self) -> dict[str, Any]:
        assert self.store is not None
        return gather_health(self.config.id, self.store, self.links,
                             started_monotonic=self._started_at or time.monotonic(),
                             clock=self._clock,
                             alarms=self.alarms.active() if self.alarms else [],
                             clock_synchronised=self.clock_sync.synchronised(),
                             time_source=self.clock_sync.source)

    def _health_with_forwarder(self) -> dict[str, Any]:
        """The health as published (the forwarder adds its stats there)."""
        return {**self.health(), "forwarder": self.forwarder.stats() if self.forwarder else {}}

    def stale_loops(self, now: float | None = None) -> list[str]:
        """Loops that died or have not gone round for STALE_LOOP_S: empty when healthy."""
        now = time.monotonic() if now is None else now
        beats = {f"link {link.config.port}": link.heartbeat for link in self.links}
        if self.forwarder is not None:
            beats["forwarder"] = self.forwarder.heartbeat if self.forwarder.running else 0.0
        beats["housekeeping"] = (self._housekeeping_beat if self._housekeeping.is_alive()
                                 else 0.0)
        return [name for name, beat in beats.items() if now - beat > STALE_LOOP_S]

    def _housekeep(self) -> None:
        """Alarms and the health file every few seconds; prune confirmed readings (the backlog
        itself never expires) every HOUSEKEEPING_INTERVAL_S."""
        next_prune = next_health = time.monotonic()
        while True:
            self._housekeeping_beat = now = time.monotonic()
            self._watch()
            if now >= next_health:
                next_health = now + self.config.health_interval_s
                self._write_health_file()
            if now >= next_prune:
                next_prune = now + HOUSEKEEPING_INTERVAL_S
                self._prune()
            if self._stopping.wait(min(ALARM_INTERVAL_S, HOUSEKEEPING_INTERVAL_S,
                                       self.config.health_interval_s)):
                return

    def _watch(self) -> None:
        try:
            assert self.alarms is not None
            self.alarms.evaluate()
        except Exception:
            log.exception("alarms could not be evaluated; trying again in %.0f s",
                          ALARM_INTERVAL_S)

    def _write_health_file(self) -> None:
        if not self.config.health_file:
            return
        try:
            write_health_file(self.config.health_file, self._health_with_forwarder())
        except OSError as e:
            if not self._health_file_failed:
                log.error("cannot write the health file %s (%s): `watershed gateway status`"
                          " shows the store only", self.config.health_file, e)
            self._health_file_failed = True
        else:
            self._health_file_failed = False

    def _prune(self) -> None:
        try:
            assert self.store is not None
            while not self._stopping.is_set():
                if not self.store.prune_confirmed(self.config.keep_sent_readings):
                    break
                self._housekeeping_beat = time.monotonic()
        except StoreFull:
            pass  # logged once by the store (space.py); pruned when there is room
        except Exception:
            log.exception("housekeeping failed; trying again in %.0f s",
                          HOUSEKEEPING_INTERVAL_S)

    def _warn_unpolled_stations(self) -> None:
        polled = {addr for link in self.config.links for addr in link.stations}
        for station in self.config.stations:
            if station.address not in polled:
                log.warning("station %s (address %d) is registered but no link polls its address",
                            station.id, station.address)


def run(config_path: str | Path) -> int:
    """Run the gateway until SIGTERM or SIGINT; returns the process exit code."""
    logs.configure()
    try:
        config = load_config(config_path)
        _check_files(config, config_path)
    except ConfigError as e:
        for problem in e.problems:  # one log line each, with file, line and key
            log.error("%s", problem)
        return EXIT_CONFIG
    stop = threading.Event()
    reload = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    def request_reload(signum: int, _frame: object) -> None:
        log.info("received SIGHUP, reloading %s", config_path)
        reload.set()
        stop.set()  # wakes the main loop

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, request_reload)
    notifier = SystemdNotifier()
    watchdog_s = watchdog_interval_s()
    gateway = Gateway(config)
    try:
        try:
            gateway.start()
        except (StoreError, OSError, sqlite3.Error) as e:
            log.error("cannot open the store %s: %s", config.store, e)
            return EXIT_STORE
        notifier.notify("READY=1", f"STATUS=gateway {config.id} running")
        while True:
            stop.wait(min(watchdog_s or 1.0, 1.0))
            if reload.is_set():
                reload.clear()
                stop.clear()
                gateway = _reload(gateway, config_path, notifier)
            if stop.is_set():
                break
            stale = gateway.stale_loops()
            if not stale:
                notifier.notify("WATCHDOG=1")
            else:
                log.error("loops not running: %s; not feeding the watchdog", ", ".join(stale))
    finally:
        notifier.notify("STOPPING=1")
        gateway.stop()
        notifier.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


def _check_files(config: GatewayConfig, config_path: str | Path) -> None:
    missing = missing_files(config)
    if missing:
        raise ConfigError([f"{config_path}: {problem}" for problem in missing])


def _reload(gateway: Gateway, config_path: str | Path, notifier: SystemdNotifier) -> Gateway:
    """A new gateway on the new config, or the running one if the new config is bad."""
    try:
        config = load_config(config_path)
        _check_files(config, config_path)
    except ConfigError as e:
        for problem in e.problems:
            log.error("reload refused, keeping the running configuration: %s", problem)
        return gateway
    notifier.notify("RELOADING=1")
    gateway.stop()
    fresh = Gateway(config)
    fresh.start()  # a store that cannot be opened now raises: systemd restarts us
    notifier.notify("READY=1", f"STATUS=gateway {config.id} running (reloaded)")
    log.info("configuration reloaded")
    return fresh
