"""The gateway's Prometheus metrics (``[gateway] metrics_port``, 127.0.0.1 only), made at each
scrape from the same health the gateway publishes (health.py): what waits, what was lost and
why, each station's last word, the alarms, the clock, the uplink.

    watershed_gateway_readings_unsent          watershed_gateway_station_last_seen_age_seconds
    watershed_gateway_readings_unconfirmed     watershed_gateway_station_battery_millivolts
    watershed_gateway_oldest_unsent_age_seconds watershed_gateway_station_link_quality
    watershed_gateway_readings_lost_total{station,cause}   watershed_gateway_alarm_active{alarm,station}
    ...
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from watershed.metrics_http import Family

from .alarms import KINDS


def families(health: dict[str, Any], now: float | None = None) -> Iterable[Family]:
    now = time.time() if now is None else now
    queue, store = health.get("queue", {}), health.get("store", {})

    def one(name: str, doc: str, value: Any) -> Family:
        family = Family(name, doc)
        family.add(value)
        return family

    yield one("readings_unsent", "readings stored, not yet acknowledged by the broker",
              queue.get("unsent"))
    yield one("readings_unconfirmed", "readings the broker acknowledged, no ingest confirmed",
              queue.get("unconfirmed"))
    yield one("oldest_unsent_age_seconds", "age of the oldest unsent reading",
              queue.get("oldest_unsent_age_s"))
    yield one("oldest_unconfirmed_age_seconds", "age of the oldest unconfirmed reading",
              queue.get("oldest_unconfirmed_age_s"))
    yield one("alerts_unsent", "alerts and alarms stored, not yet published",
              queue.get("alerts_unsent"))
    for key in ("readings_received", "readings_sent", "readings_confirmed", "readings_rejected",
                "readings_resent", "duplicates", "conflicts", "readings_shed"):
        yield one(f"{key}_total", f"{key.replace('_', ' ')} since the store was created",
                  store.get(key))
    yield one("store_files_bytes", "the store's files on disk", health.get("store_files_bytes"))
    yield one("store_quota_bytes", "the store's quota", store.get("quota_bytes"))
    yield one("disk_free_bytes", "free space on the store's disk", health.get("disk_free_bytes"))
    yield one("store_full", "1 while the store takes no readings (disk or quota full)",
              health.get("store_full"))
    yield one("quarantined_readings", "readings held back, sender in doubt",
              health.get("quarantine", {}).get("readings"))
    yield one("clock_synchronised", "1 while this machine's clock is synchronised (OS)",
              health.get("clock", {}).get("synchronised"))
    forwarder = health.get("forwarder", {})
    yield one("uplink_connected", "1 while connected to the broker", forwarder.get("connected"))
    yield one("uptime_seconds", "since the daemon started", health.get("uptime_s"))

    lost = Family("readings_lost_total", "readings lost, by station and cause (the loss ledger)",
                  ("station", "cause"))
    per_station = {
        "last_seen_age_seconds": Family("station_last_seen_age_seconds",
                                        "since the station was last heard", ("station",)),
        "battery_mv": Family("station_battery_millivolts", "its last STATUS", ("station",)),
        "clock_offset_s": Family("station_clock_offset_seconds",
                                 "station clock minus gateway clock", ("station",)),
        "outbox_depth": Family("station_outbox_depth", "readings waiting at the station",
                               ("station",)),
        "link_quality": Family("station_link_quality", "share of recent polls answered",
                               ("station",)),
    }
    for station, s in health.get("stations", {}).items():
        for cause, n in s.get("losses", {}).items():
            if cause != "total":
                lost.add(n, station=station, cause=cause)
        seen = s.get("last_seen")
        per_station["last_seen_age_seconds"].add(None if seen is None else now - seen,
                                                 station=station)
        for key in ("battery_mv", "clock_offset_s", "outbox_depth", "link_quality"):
            per_station[key].add(s.get(key), station=station)
    yield lost
    yield from per_station.values()
    alarms = Family("alarm_active", "1 while the alarm holds (alarms.py)", ("alarm", "station"))
    active = {(a["alarm"], a.get("station") or "") for a in health.get("alarms", [])}
    for kind in KINDS:  # every gateway-wide kind, 0 or 1, so a dashboard sees it clear
        if not any(k == kind for k, _ in active):
            alarms.add(0, alarm=kind, station="")
    for kind, station in sorted(active):
        alarms.add(1, alarm=kind, station=station)
    yield alarms


def collector(health: Callable[[], dict[str, Any]]) -> Callable[[], Iterable[Family]]:
    return lambda: list(families(health()))
