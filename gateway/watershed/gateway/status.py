"""``watershed gateway status``: what a gateway holds and how it is, read on the gateway itself.

It needs neither the broker nor the daemon: the store says what waits (unsent, unconfirmed),
what each station last said (last heard, battery, clock offset, outbox depth), the quarantine
and the loss ledger; the health file the daemon rewrites every ``health_interval_s``
(``[gateway] health_file``, on tmpfs) adds what only the running daemon knows: link quality,
active alarms, whether this machine's clock is synchronised, the uplink. When that file is
missing or stale the status says so and shows the store alone.
"""

from __future__ import annotations

import time
from typing import Any

from .config import GatewayConfig
from .health import read_health_file
from .quarantine import summary as quarantine_summary
from .store import Store

STALE_FACTOR = 3  # a health file older than this many health intervals is stale


def gather_status(config: GatewayConfig, store: Store, now: float | None = None
                  ) -> dict[str, Any]:
    """Everything ``status`` shows, as JSON-ready data."""
    now = time.time() if now is None else now
    health = read_health_file(config.health_file) if config.health_file else None
    health_age = None if health is None else round(now - float(health.get("at", 0)), 1)
    fresh = health is not None and health_age is not None and (
        health_age <= STALE_FACTOR * config.health_interval_s + 30)
    live = health if fresh and health is not None else {}
    counts = store.counts()
    ledger = store.loss_ledger()
    causes: dict[str, int] = {}
    for reasons in ledger.values():
        for reason, n in reasons.items():
            causes[reason] = causes.get(reason, 0) + n
    live_stations = live.get("stations", {})
    registry = {s.id: s for s in config.stations}
    stations = []
    facts = {info.station: info for info in store.stations()}
    for station in sorted(set(registry) | set(facts)):
        info = facts.get(station)
        # The daemon writes the facts of every poll to the store once a minute (store/facts.py:
        # SD wear); its health has the newest.
        said = {k: getattr(info, k) if info else None
                for k in ("last_seen", "battery_mv", "clock_offset_s", "outbox_depth")}
        said.update({k: v for k, v in live_stations.get(station, {}).items() if k in said})
        losses = ledger.get(station, {})
        stations.append({
            "station": station,
            "registered": station in registry,
            "address": registry[station].address if station in registry else (
                info.address if info else None),
            "last_seen": _int(said["last_seen"]),
            "last_seen_age_s": _age(now, said["last_seen"]),
            "battery_mv": said["battery_mv"],
            "clock_offset_s": _round(said["clock_offset_s"]),
            "outbox_depth": said["outbox_depth"],
            "firmware": info.firmware if info else None,
            "link_quality": live_stations.get(station, {}).get("link_quality"),
            "lost": sum(losses.values()),
        })
    oldest_unsent = store.oldest_unsent_received_at()
    oldest_unconfirmed = store.oldest_unconfirmed_received_at()
    forwarder = live.get("forwarder", {})
    return {
        "gateway": config.id,
        "at": int(now),
        "store": config.store,
        "daemon": {"health_file": config.health_file or None,
                   "health_age_s": health_age, "fresh": fresh},
        "clock": live.get("clock", {"synchronised": None, "source": config.time_source}),
        "uplink": {"connected": forwarder.get("connected"),
                   "readings_confirmed": forwarder.get("readings_confirmed"),
                   "ingests": forwarder.get("ingests")},
        "readings": {"unsent": counts["unsent"], "oldest_unsent_age_s": _age(now, oldest_unsent),
                     "unconfirmed": counts["unconfirmed"],
                     "oldest_unconfirmed_age_s": _age(now, oldest_unconfirmed),
                     "received": counts["readings_received"],
                     "confirmed": counts["readings_confirmed"],
                     "alerts_unsent": counts["alerts_unsent"]},
        "store_space": {"used_bytes": store.used_bytes(), "files_bytes": store.files_bytes(),
                        "quota_bytes": store.quota_bytes,
                        "disk_free_bytes": store.space.free_bytes()},
        "stations": stations,
        "quarantine": quarantine_summary(store),
        "losses": {"total": sum(causes.values()), "by_cause": causes, "by_station": ledger},
        "alarms": live.get("alarms") if fresh else None,
    }


def render(status: dict[str, Any]) -> str:
    """The status as a person reads it at a terminal."""
    out: list[str] = []
    daemon = status["daemon"]
    if daemon["fresh"]:
        where = f"daemon health {daemon['health_age_s']:.0f} s old"
    elif daemon["health_age_s"] is not None:
        where = (f"daemon health STALE ({daemon['health_age_s']:.0f} s old): is the daemon"
                 " running?")
    else:
        where = "no daemon health file: is the daemon running? showing the store alone"
    out.append(f"gateway {status['gateway']}  ({where})")
    clock = status["clock"]
    synced = {True: "synchronised", False: "NOT SYNCHRONISED (no TIME sent to stations)",
              None: "unknown"}[clock.get("synchronised")]
    out.append(f"clock       {synced} [{clock.get('source')}]")
    uplink = status["uplink"]
    if uplink["connected"] is not None:
        out.append(f"uplink      {'connected' if uplink['connected'] else 'DISCONNECTED'},"
                   f" ingests seen: {', '.join(uplink['ingests'] or []) or 'none'}")
    r = status["readings"]
    out.append(f"readings    {r['unsent']} unsent{_oldest(r['oldest_unsent_age_s'])},"
               f" {r['unconfirmed']} unconfirmed{_oldest(r['oldest_unconfirmed_age_s'])},"
               f" {r['alerts_unsent']} alerts unsent")
    space = status["store_space"]
    quota = space["quota_bytes"]
    out.append(f"store       {_mb(space['used_bytes'])} used"
               + (f" of {_mb(quota)} quota ({space['used_bytes'] / quota:.0%})" if quota else "")
               + f", disk free {_mb(space['disk_free_bytes'])}")
    alarms = status["alarms"]
    if alarms is None:
        out.append("alarms      unknown (no fresh daemon health)")
    elif not alarms:
        out.append("alarms      none")
    else:
        out.append(f"alarms      {len(alarms)} active:")
        for a in alarms:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(a["since"]))
            who = f" {a['station']}" if a.get("station") else ""
            out.append(f"  {a['alarm']}{who}: {a['detail']} (since {since} UTC)")
    out.append("")
    out.append(f"{'STATION':<14} {'ADDR':>4} {'LAST HEARD':>10} {'BATT mV':>7} {'CLOCK s':>8}"
               f" {'OUTBOX':>6} {'LINK':>5} {'LOST':>6}")
    for s in status["stations"]:
        name = s["station"] + ("" if s["registered"] else "?")
        out.append(f"{name:<14} {_cell(s['address']):>4} {_ago(s['last_seen_age_s']):>10}"
                   f" {_cell(s['battery_mv']):>7} {_cell(s['clock_offset_s']):>8}"
                   f" {_cell(s['outbox_depth']):>6} {_pct(s['link_quality']):>5}"
                   f" {s['lost']:>6}")
    if any(not s["registered"] for s in status["stations"]):
        out.append("(? heard but not in the registry)")
    q = status["quarantine"]
    out.append("")
    out.append(f"quarantine  {q['count']} open entries, {q['readings']} readings"
               + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(q['cases'].items()))});"
                  " see `watershed gateway quarantine list`" if q["count"] else ""))
    losses = status["losses"]
    out.append(f"losses      {losses['total']} readings"
               + (": " + ", ".join(f"{cause} {n}" for cause, n in sorted(
                   losses["by_cause"].items())) if losses["total"] else ""))
    return "\n".join(out)


def _oldest(age: float | None) -> str:
    return "" if age is None else f" (oldest {_ago(age)})"


def _ago(age: float | None) -> str:
    if age is None:
        return "never"
    for unit, seconds in (("d", 86400), ("h", 3600), ("min", 60)):
        if age >= seconds:
            return f"{age / seconds:.0f} {unit} ago"
    return f"{age:.0f} s ago"


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _cell(x: Any) -> str:
    return "-" if x is None else str(x)


def _age(now: float, since: float | None) -> float | None:
    return None if since is None else round(now - since, 1)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _int(x: float | None) -> int | None:
    return None if x is None else int(x)
