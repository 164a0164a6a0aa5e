"""What the ingest reports about itself: write latency and batch sizes over a recent window,
consumer lag, and the status document published (retained) on ``<prefix>/v1/ingest/<id>/status``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, deque
from typing import Any

from ..contracts.mqtt import PAYLOAD_VERSION
from ..metrics_http import Family

WINDOW = 1000  # writes kept for percentiles: recent enough to show a slow database now


class WriteWindow:
    """The last WINDOW confirmed writes: (points, seconds). Fed by the worker thread, read by
    the network thread."""

    def __init__(self, size: int = WINDOW) -> None:
        self._writes: deque[tuple[int, float]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def observe(self, points: int, seconds: float) -> None:
        with self._lock:
            self._writes.append((points, seconds))

    def summary(self) -> dict[str, Any]:
        with self._lock:
            writes = list(self._writes)
        if not writes:
            return {"writes": 0, "latency_ms": None, "batch_points": None}
        latencies = sorted(seconds for _, seconds in writes)
        sizes = [points for points, _ in writes]
        return {"writes": len(writes),
                "latency_ms": {"p50": round(percentile(latencies, 50) * 1000, 2),
                               "p99": round(percentile(latencies, 99) * 1000, 2),
                               "max": round(latencies[-1] * 1000, 2)},
                "batch_points": {"mean": round(sum(sizes) / len(sizes), 1),
                                 "max": max(sizes)}}


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n·p/100)
    return ordered[int(rank) - 1]


class Unacked:
    """Messages received and not yet acknowledged, oldest first: the consumer lag is the age of
    the first. Network thread only (where messages arrive and acks leave)."""

    def __init__(self) -> None:
        self._received: OrderedDict[tuple[int, int], float] = OrderedDict()

    def add(self, session: int, mid: int) -> None:
        self._received[(session, mid)] = time.monotonic()

    def settle(self, session: int, mid: int) -> None:
        self._received.pop((session, mid), None)

    def forget_sessions_before(self, session: int) -> None:
        """A new connection: the broker resends what an older one left unacked."""
        for key in [k for k in self._received if k[0] < session]:
            del self._received[key]

    def __len__(self) -> int:
        return len(self._received)

    def oldest_age_s(self) -> float:
        if not self._received:
            return 0.0
        return time.monotonic() - next(iter(self._received.values()))


def status_document(ingest_id: str, state: str, since: int, stats: dict[str, Any],
                    writes: dict[str, Any], unacked: int, lag_s: float) -> dict[str, Any]:
    """The ingest status (contract 2: ``<prefix>/v1/ingest/<id>/status``, retained)."""
    return {
        "v": PAYLOAD_VERSION, "ingest": ingest_id, "state": state, "since": since,
        "at": int(time.time()), "connected": bool(stats.get("connected")),
        "messages": {"received": stats.get("received", 0), "acked": stats.get("acks_sent", 0),
                     "written": stats.get("messages_written", 0),
                     "deadlettered": stats.get("deadlettered", 0),
                     "invalid": stats.get("invalid", 0), "unacked": unacked,
                     "queued": stats.get("queued", 0), "pending": stats.get("pending", 0)},
        "points": {"written": stats.get("points_written", 0),
                   "rejected": stats.get("points_rejected", 0)},
        # End to end (contracts.md 2): confirmations published, readings refused one by one.
        "readings": {"rejected": stats.get("readings_rejected", 0),
                     # of them, from a gateway that does not own their station (owners.py)
                     "not_owned": stats.get("readings_not_owned", 0),
                     "confirmations": stats.get("confirmations", 0)},
        "batches": {"written": stats.get("batches_written", 0),
                    "write_failures": stats.get("write_failures", 0),
                    "last_write_error": stats.get("last_write_error") or None},
        "window": writes,
        "lag_s": round(lag_s, 3),
    }


def encode_status(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def log_line(document: dict[str, Any]) -> str:
    """One line for the periodic log: the numbers an operator scans for."""
    m, w = document["messages"], document["window"]
    latency = w["latency_ms"] or {"p50": 0, "p99": 0}
    return (f"ingest {document['ingest']}: received {m['received']}, acked {m['acked']}, "
            f"dead-lettered {m['deadlettered']}, unacked {m['unacked']}, points written "
            f"{document['points']['written']}, write p50 {latency['p50']} ms p99 "
            f"{latency['p99']} ms, lag {document['lag_s']} s, write failures "
            f"{document['batches']['write_failures']}")


def prometheus_families(document: dict[str, Any]) -> list[Family]:
    """The status document (``status_document``) as Prometheus metrics (metrics_http.py):
    counters as ``…_total``, the backlog, the lag, write latency."""
    families: list[Family] = []

    def one(name: str, doc: str, value: Any) -> None:
        family = Family(name, doc)
        family.add(value)
        families.append(family)

    for section in ("messages", "readings", "points", "batches"):
        for key, value in (document.get(section) or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                total = "" if key in ("unacked", "queued", "pending") else "_total"
                one(f"{section}_{key}{total}", f"{section} {key.replace('_', ' ')}", value)
    one("consumer_lag_seconds", "age of the oldest message not yet acknowledged",
        document.get("lag_s"))
    one("started_timestamp_seconds", "when the ingest started", document.get("since"))
    one("connected", "1 while connected to the broker", document.get("connected"))
    latency = (document.get("window") or {}).get("latency_ms") or {}
    for quantile in ("p50", "p99", "max"):
        value = latency.get(quantile)
        one(f"write_latency_{quantile}_seconds", f"InfluxDB write latency, {quantile}, recent",
            None if value is None else value / 1000)
    return families
