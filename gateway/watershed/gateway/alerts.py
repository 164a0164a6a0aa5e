"""Edge flood alerts: per-station rules evaluated at the gateway as readings arrive.

Two kinds of rule (config ``[[station.alert]]``), both edge-triggered so one flood is one alert
and not one per reading:
- ``above``: the channel's value crosses the threshold upwards; re-armed once it falls below.
- ``rise`` within ``within_s``: the value is at least ``rise`` above the lowest value of that
  channel in the preceding ``within_s`` seconds; re-armed once the rise falls below it.

A rule with a ``command`` also runs it locally (alert_commands.py): an SMS or a siren still
goes off when the uplink is down. An alert goes into the store first (so it survives a restart
and waits out an uplink outage, logged here meanwhile), then the forwarder publishes it ahead of
any reading.

The gateway's own alerts (``on_store_space``: the store became full, or writable again) go the
same way, under the pseudo-station ``_gateway`` (no station id starts with "_"), so on
``<prefix>/v1/<gateway>/_gateway/alert``. While the store is full the store keeps them in memory
and hands them to the forwarder all the same; they are written once there is room.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from watershed.contracts.mqtt import PAYLOAD_VERSION, MessageReading

from .alert_commands import AlertCommands
from .config import AlertRule, StationConfig
from .space import SpaceChange
from .store import Store

log = logging.getLogger(__name__)

GATEWAY_ALERTS = "_gateway"  # the pseudo-station of the gateway's own alerts


def store_space_alert(gateway_id: str, change: SpaceChange) -> str:
    """The payload of the alert for a store that became full, or writable again."""
    body: dict[str, object] = {
        "v": PAYLOAD_VERSION, "gateway": gateway_id, "alert": "store_full",
        "state": "raised" if change.full else "cleared", "reason": change.reason,
        "full_since": int(change.since), "detail": change.detail, "raised_at": int(change.at)}
    if not change.full:
        body["full_for_s"] = round(change.at - change.since, 1)
    return json.dumps(body, separators=(",", ":"))


@dataclass
class _RuleState:
    armed: bool = True
    window: deque[tuple[int, float]] = field(default_factory=deque)  # (ts, value), ascending
    last_ts: int | None = None  # readings at or before this were evaluated already


class AlertEngine:
    """Evaluates each station's rules on its readings; thread-safe (links call it)."""

    def __init__(self, gateway_id: str, registry: Mapping[str, StationConfig], store: Store, *,
                 on_alert: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.time,
                 commands: AlertCommands | None = None,
                 space_command: Sequence[str] = ()) -> None:
        self._gateway_id = gateway_id
        self._commands = commands or AlertCommands()
        self._space_command = tuple(space_command)
        self._registry = registry
        self._store = store
        self._on_alert = on_alert
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[tuple[str, int], _RuleState] = {}
        self.raised = 0

    def evaluate(self, station: str, readings: list[MessageReading]) -> int:
        """Run ``station``'s rules over newly stored readings; returns alerts raised."""
        config = self._registry.get(station)
        if config is None or not config.alerts:
            return 0
        raised = 0
        with self._lock:
            for index, rule in enumerate(config.alerts):
                state = self._states.setdefault((station, index), _RuleState())
                for reading in sorted((r for r in readings if r.channel == rule.channel
                                       and not r.missing), key=lambda r: r.ts):
                    if state.last_ts is not None and reading.ts <= state.last_ts:
                        continue  # a backfilled or repeated reading: history, not news
                    state.last_ts = reading.ts
                    detail = _check(rule, state, reading)
                    if detail is not None:
                        self._raise(config, rule, reading, detail)
                        raised += 1
        if raised:
            self._on_alert()
        return raised

    def on_store_space(self, change: SpaceChange) -> None:
        """The store became full or writable again (space.py logged it): alert, without taking
        this engine's lock (the store may hold its own, which ``evaluate`` takes after ours)."""
        payload = store_space_alert(self._gateway_id, change)
        self._store.add_alert(GATEWAY_ALERTS, payload)
        self._commands.run(self._space_command, payload, "store_full",
                           "raised" if change.full else "cleared")
        self.raised += 1
        self._on_alert()

    def _raise(self, config: StationConfig, rule: AlertRule, reading: MessageReading,
               detail: dict[str, object]) -> None:
        value = reading.value_text
        body = {"v": PAYLOAD_VERSION, "gateway": self._gateway_id, "station": config.id,
                "basin": config.basin, "channel": rule.channel, "seq": reading.seq,
                "ts": reading.ts, "value": "__VALUE__", "flags": reading.flags, **detail,
                "raised_at": int(self._clock())}
        # The value keeps its exact decimal text, as in a readings message.
        payload = json.dumps(body, separators=(",", ":")).replace('"__VALUE__"', str(value))
        self._store.add_alert(config.id, payload)
        self._commands.run(rule.command, payload, "flood", "raised")
        self.raised += 1
        log.warning("FLOOD ALERT station %s %s = %s at %d: %s", config.id, rule.channel, value,
                    reading.ts, detail)


def _check(rule: AlertRule, state: _RuleState, reading: MessageReading) -> dict[str, object] | None:
    """Update ``state`` with ``reading``; the alert's detail if the rule fires now."""
    value = float(reading.value or 0)
    firing: dict[str, object] | None = None
    if rule.above is not None and value >= rule.above:
        firing = {"rule": "above", "limit": rule.above}
    if rule.rise is not None:
        window = state.window
        while window and window[0][0] < reading.ts - rule.within_s:
            window.popleft()
        lowest = min((v for _, v in window), default=value)
        window.append((reading.ts, value))
        if value - lowest >= rule.rise and firing is None:
            firing = {"rule": "rise", "limit": rule.rise, "within_s": rule.within_s,
                      "rise": round(value - lowest, 9)}
    if firing is None:
        state.armed = True
        return None
    if not state.armed:
        return None
    state.armed = False
    return firing
