"""The gateway's health message (retained on ``<prefix>/v1/<gw>/health``): enough for someone
far away to see, without a visit, whether readings flow, what waits, and what was lost."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from watershed import __version__
from watershed.contracts.mqtt import PAYLOAD_VERSION

from .link import SerialLink
from .quarantine import summary as quarantine_summary
from .store import Store


def gather_health(gateway_id: str, store: Store, links: Iterable[SerialLink], *,
                  started_monotonic: float, clock: Callable[[], float] = time.time,
                  alarms: list[dict[str, Any]] | None = None,
                  clock_synchronised: bool | None = None, time_source: str | None = None
                  ) -> dict[str, Any]:
    now = clock()
    links = list(links)
    counts = store.counts()
    oldest = store.oldest_unsent_received_at()
    oldest_unconfirmed = store.oldest_unconfirmed_received_at()
    quality: dict[str, float] = {}
    for link in links:
        quality.update(link.link_quality())
    ledger = store.loss_ledger()
    stations: dict[str, Any] = {}
    for info in store.stations():
        losses = ledger.get(info.station, {})
        stations[info.station] = {
            "last_seen": _round(info.last_seen),
            "battery_mv": info.battery_mv,
            "link_quality": quality.get(info.station),
            "clock_offset_s": _round(info.clock_offset_s),
            "firmware": info.firmware,
            "boot_count": info.boot_count,
            "outbox_depth": info.outbox_depth,
            "losses": {"total": sum(losses.values()), **losses},
            # The station's own totals (flash full, corrupt segment), as its STATUS said.
            "station_reported_losses": {"overwritten": info.lost_overwritten,
                                        "corrupt": info.lost_corrupt},
        }
    return {
        "v": PAYLOAD_VERSION,
        "gateway": gateway_id,
        "version": __version__,
        "at": int(now),
        "uptime_s": round(time.monotonic() - started_monotonic, 1),
        "queue": {"unsent": counts["unsent"],
                  "oldest_unsent_age_s": _age(now, oldest),
                  # Acknowledged by the broker, not yet confirmed by an ingest (end to end).
                  "unconfirmed": counts["unconfirmed"],
                  "oldest_unconfirmed_age_s": _age(now, oldest_unconfirmed),
                  "alerts_unsent": counts["alerts_unsent"]},
        "store": {**counts, "quota_bytes": store.quota_bytes,
                  "losses_total": sum(sum(r.values()) for r in ledger.values())},
        # Readings held back because who sent them is in doubt (quarantine.py).
        "quarantine": quarantine_summary(store),
        "disk_free_bytes": _disk_free(store.path),
        # Full (disk or quota): nothing is ACKed and DATA waits until there is room (space.py).
        **store.space.health(),
        "store_files_bytes": store.files_bytes(),
        "stations": stations,
        "links": {link.config.port: link.stats() for link in links},
        # This machine's clock as the OS says (clock_sync.py): TIME goes out only while true.
        "clock": {"synchronised": clock_synchronised, "source": time_source},
        # Active alarms (alarms.py), each raised and cleared as an alert too.
        "alarms": alarms or [],
    }


def write_health_file(path: str, health: dict[str, Any]) -> None:
    """Replace ``path`` with ``health`` at once (a reader never sees half a file). Meant for
    tmpfs (/run): rewritten every health interval, it must not wear the SD card."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(health, separators=(",", ":")) + "\n")
    os.replace(partial, target)


def read_health_file(path: str) -> dict[str, Any] | None:
    """The last health the daemon wrote, or None if there is none (not running, another
    machine)."""
    try:
        health = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return health if isinstance(health, dict) else None


def _disk_free(path: str) -> int | None:
    try:
        return shutil.disk_usage(Path(path).parent).free
    except OSError:
        return None


def _age(now: float, since: float | None) -> float | None:
    return None if since is None else round(now - since, 1)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
