"""The gateway's own alarms: conditions someone far away must hear of before they cost readings.

    disk_free            the store's disk has less free than [alarms] disk_free_min_bytes
    store_quota          the store's pages in use exceed store_quota_fraction of its quota
    station_silent       a registered, polled station unheard for silent_polls poll intervals
    station_clock        a station's clock (its last STATUS) off by more than
                         station_clock_max_offset_s
    link_errors          a station's recent polls unanswered above link_error_rate
    no_confirmation      readings wait unconfirmed and no ingest confirmed anything for
                         no_confirmation_s (the ingest, or the way to it, is down)
    gateway_clock        this machine's clock is not synchronised (clock_sync.py)

``evaluate()`` (the daemon calls it every ALARM_INTERVAL_S) compares what holds now with what
held before: an alarm that starts is *raised*, one that ends is *cleared*, each once, as an
alert under the gateway's pseudo-station (``<prefix>/v1/<gw>/_gateway/alert``, stored until
sent, alerts.py) with ``[alarms] command`` run locally too (alert_commands.py). ``active()`` is
what health and ``watershed gateway status`` show. Active alarms live in memory: after a restart
one that still holds is raised again (a repeat, never a silence).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from watershed.contracts.mqtt import PAYLOAD_VERSION

from .alert_commands import AlertCommands
from .alerts import GATEWAY_ALERTS
from .clock_sync import ClockSync
from .config import AlarmConfig, GatewayConfig
from .link import SerialLink
from .store import Store

log = logging.getLogger(__name__)

ALARM_INTERVAL_S = 10.0

DISK_FREE = "disk_free"
STORE_QUOTA = "store_quota"
STATION_SILENT = "station_silent"
STATION_CLOCK = "station_clock"
LINK_ERRORS = "link_errors"
NO_CONFIRMATION = "no_confirmation"
GATEWAY_CLOCK = "gateway_clock"
KINDS = (DISK_FREE, STORE_QUOTA, STATION_SILENT, STATION_CLOCK, LINK_ERRORS, NO_CONFIRMATION,
         GATEWAY_CLOCK)


@dataclass(frozen=True)
class Alarm:
    kind: str
    station: str | None  # None: the gateway's own
    detail: str
    value: float | None = None
    limit: float | None = None

    @property
    def key(self) -> tuple[str, str | None]:
        return self.kind, self.station


@dataclass(frozen=True)
class Observations:
    """What the alarms are judged on, gathered at one moment (``observe``; tests build one)."""

    now: float
    disk_free_bytes: int | None
    store_used_bytes: int
    quota_bytes: int | None
    clock_synchronised: bool
    # station -> (last heard, its link's poll interval, clock offset, link quality)
    stations: Mapping[str, tuple[float | None, float, float | None, float | None]]
    unconfirmed: int
    last_confirmation_at: float | None  # None: none since the gateway started
    started_at: float


def judge(config: AlarmConfig, seen: Observations) -> list[Alarm]:
    """Every alarm that holds for ``seen``."""
    alarms: list[Alarm] = []
    if seen.disk_free_bytes is not None and seen.disk_free_bytes < config.disk_free_min_bytes:
        alarms.append(Alarm(DISK_FREE, None, f"{seen.disk_free_bytes} bytes free on the store's"
                            f" disk, below {config.disk_free_min_bytes}",
                            seen.disk_free_bytes, config.disk_free_min_bytes))
    if seen.quota_bytes:
        used = seen.store_used_bytes / seen.quota_bytes
        if used > config.store_quota_fraction:
            alarms.append(Alarm(STORE_QUOTA, None, f"the store uses {used:.0%} of its quota of"
                                f" {seen.quota_bytes} bytes; readings are shed at 100%",
                                round(used, 4), config.store_quota_fraction))
    if not seen.clock_synchronised:
        alarms.append(Alarm(GATEWAY_CLOCK, None, "this machine's clock is not synchronised: no"
                            " TIME goes to stations; readings keep the stations' clocks"))
    for station, (last_seen, poll_s, offset, quality) in sorted(seen.stations.items()):
        silent_for = seen.now - (seen.started_at if last_seen is None else last_seen)
        limit = config.silent_polls * poll_s
        if silent_for > limit:
            alarms.append(Alarm(STATION_SILENT, station, f"not heard for {silent_for:.0f} s"
                                + (" (never since the gateway started)" if last_seen is None
                                   else ""), round(silent_for, 1), limit))
        if offset is not None and abs(offset) > config.station_clock_max_offset_s:
            alarms.append(Alarm(STATION_CLOCK, station, f"its clock is {offset:+.0f} s off",
                                round(offset, 1), config.station_clock_max_offset_s))
        if quality is not None and 1 - quality > config.link_error_rate:
            alarms.append(Alarm(LINK_ERRORS, station, f"{1 - quality:.0%} of its recent polls"
                                " went unanswered", round(1 - quality, 3), config.link_error_rate))
    since = seen.last_confirmation_at or seen.started_at
    if seen.unconfirmed and seen.now - since > config.no_confirmation_s:
        alarms.append(Alarm(NO_CONFIRMATION, None, f"{seen.unconfirmed} readings unconfirmed and"
                            f" no ingest confirmed any for {seen.now - since:.0f} s",
                            round(seen.now - since, 1), config.no_confirmation_s))
    return alarms


def alarm_payload(gateway_id: str, alarm: Alarm, state: str, raised_at: float, now: float
                  ) -> str:
    body: dict[str, Any] = {"v": PAYLOAD_VERSION, "gateway": gateway_id, "alarm": alarm.kind,
                            "station": alarm.station, "state": state, "detail": alarm.detail,
                            "value": alarm.value, "limit": alarm.limit,
                            "raised_at": int(raised_at)}
    if state == "cleared":
        body["cleared_at"] = int(now)
    return json.dumps(body, separators=(",", ":"))


class AlarmMonitor:
    """Raises and clears the alarms; thread-safe (``evaluate`` and ``active``)."""

    def __init__(self, config: GatewayConfig, store: Store, observe: Callable[[], Observations],
                 *, commands: AlertCommands | None = None,
                 on_alert: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.time) -> None:
        self._gateway_id = config.id
        self._config = config.alarms
        self._store = store
        self._observe = observe
        self._commands = commands or AlertCommands()
        self._on_alert = on_alert
        self._clock = clock
        self._lock = threading.Lock()
        self._active: dict[tuple[str, str | None], tuple[Alarm, float]] = {}  # -> raised at
        self.raised = self.cleared = 0

    def evaluate(self) -> list[tuple[str, Alarm]]:
        """Judge now; returns the changes (``("raised"|"cleared", alarm)``), each sent."""
        seen = self._observe()
        now = seen.now
        holding = {alarm.key: alarm for alarm in judge(self._config, seen)}
        changes: list[tuple[str, Alarm, float]] = []
        with self._lock:
            for key, (alarm, raised_at) in list(self._active.items()):
                if key not in holding:
                    del self._active[key]
                    changes.append(("cleared", alarm, raised_at))
            for key, alarm in holding.items():
                if key in self._active:
                    self._active[key] = (alarm, self._active[key][1])  # detail kept current
                else:
                    self._active[key] = (alarm, now)
                    changes.append(("raised", alarm, now))
        for state, alarm, raised_at in changes:
            self._send(alarm, state, raised_at, now)
        if changes:
            self._on_alert()
        return [(state, alarm) for state, alarm, _ in changes]

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            items = sorted(self._active.values(), key=lambda a: (a[0].kind, a[0].station or ""))
        return [{"alarm": a.kind, "station": a.station, "detail": a.detail, "value": a.value,
                 "limit": a.limit, "since": int(since)} for a, since in items]

    def _send(self, alarm: Alarm, state: str, raised_at: float, now: float) -> None:
        payload = alarm_payload(self._gateway_id, alarm, state, raised_at, now)
        level = logging.WARNING if state == "raised" else logging.INFO
        log.log(level, "ALARM %s %s%s: %s", alarm.kind, state,
                f" station {alarm.station}" if alarm.station else "", alarm.detail)
        if state == "raised":
            self.raised += 1
        else:
            self.cleared += 1
        try:
            self._store.add_alert(GATEWAY_ALERTS, payload)
        except Exception as e:  # the store full: its own alarm; the command still runs
            log.error("alarm %s %s not stored for MQTT: %s", alarm.kind, state, e)
        self._commands.run(self._config.command, payload, alarm.kind, state)


def observer(config: GatewayConfig, store: Store, links: Iterable[SerialLink],
             clock_sync: ClockSync, last_confirmation: Callable[[], float | None],
             *, started_at: float, clock: Callable[[], float] = time.time,
             disk_free: Callable[[], int | None] | None = None) -> Callable[[], Observations]:
    """The daemon's ``observe``: the store, the links' quality, the clock, the forwarder's last
    confirmation (``last_confirmation()``; what waits unconfirmed is read from the store)."""
    links = list(links)
    polled_by = {addr: link.config.poll_interval_s for link in links
                 for addr in link.config.stations}
    registered = {s.id: s.address for s in config.stations if s.address in polled_by}
    free = disk_free or store.space.free_bytes

    def observe() -> Observations:
        quality: dict[str, float] = {}
        for link in links:
            quality.update(link.link_quality())
        facts = {info.station: info for info in store.stations()}
        stations = {}
        for station, address in registered.items():
            info = facts.get(station)
            stations[station] = (info.last_seen if info else None, polled_by[address],
                                 info.clock_offset_s if info else None, quality.get(station))
        return Observations(now=clock(), disk_free_bytes=free(),
                            store_used_bytes=store.used_bytes(), quota_bytes=store.quota_bytes,
                            clock_synchronised=clock_sync.synchronised(), stations=stations,
                            unconfirmed=store.counts()["unconfirmed"],
                            last_confirmation_at=last_confirmation(), started_at=started_at)
    return observe
