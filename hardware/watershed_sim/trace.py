"""Where did a reading go? A trace of every hop after the gateway's store, for the report.

When a scenario ends with readings missing from InfluxDB, the runner explains each one from
what the hops recorded on the way: the gateway store's row (received, sent), every MQTT message
that carried the seq (a tap: a plain, non-shared subscription of its own beside the ingest's),
every line the ingest wrote for it (the writer is wrapped), and what InfluxDB holds at that
station, channel and time. A loss is never silent; neither is its cause.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from watershed.contracts.mqtt import Topics
from watershed.hydro.influxql import query, quote_string

Key = tuple[str, int]  # (station, seq)


@dataclass
class MqttTap:
    """Records every readings message and dead letter the broker carries (QoS 1).

    A message is kept as it came (time, topic, payload) and read only when a reading is
    explained: a run with nothing missing spends no parsing on its trace, and the record is
    plain tuples the garbage collector stops scanning (a 30-day, 50-station run carries
    millions of readings)."""

    host: str
    port: int
    prefix: str = "watershed"
    carried: list[tuple[float, str, bytes]] = field(default_factory=list)
    deadletters: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._topics = Topics(self.prefix)
        self._ready = threading.Event()
        self._by_reading = _Index(self._readings_of)
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="",
                                   clean_session=True, protocol=mqtt.MQTTv311)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._on_message

    def start(self, timeout_s: float = 10) -> None:
        self._client.connect(self.host, self.port, keepalive=30)
        self._client.loop_start()
        self._ready.wait(timeout_s)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def messages(self, station: str, seq: int) -> list[tuple[float, str, dict[str, Any]]]:
        """(time, topic, the reading as the message had it) of each message that carried it."""
        with self._lock:
            return self._by_reading.get(self.carried, (station, seq))

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(self._topics.all_readings(), 1),
                          (self._topics.deadletter("#"), 1)])

    def _on_message(self, client: mqtt.Client, userdata: object,
                    message: mqtt.MQTTMessage) -> None:
        payload = bytes(message.payload)
        with self._lock:
            if self._topics.parse_readings(message.topic) is None:
                self.deadletters.append(payload)
            else:
                self.carried.append((time.time(), message.topic, payload))

    @staticmethod
    def _readings_of(record: tuple[float, str, bytes]) -> Iterator[tuple[Any, Any]]:
        at, topic, payload = record
        try:
            body = json.loads(payload)
        except ValueError:
            return  # not JSON: the ingest dead-letters it, and it carried no reading
        readings = body.get("readings") if isinstance(body, dict) else None
        for r in readings if isinstance(readings, list) else ():
            if isinstance(r, dict):
                yield (body.get("station"), r.get("seq")), (at, topic, r)


class RecordingWriter:
    """Wraps the ingest's writer: every line InfluxDB confirmed (or refused), by station/seq.

    Each write is kept whole (time, lines, error) and indexed by reading only when one is
    explained, as MqttTap keeps its messages."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes: list[tuple[float, tuple[str, ...], str | None]] = []
        self._lock = threading.Lock()
        self._by_reading = _Index(self._lines_of)

    def write(self, lines: list[str]) -> None:
        try:
            self.inner.write(lines)
        except Exception as e:
            self._record(lines, repr(e))
            raise
        self._record(lines, None)

    def close(self) -> None:
        self.inner.close()

    def written(self, station: str, seq: int) -> list[tuple[float, str]]:
        """(time, line) of each write InfluxDB confirmed with the reading's line."""
        return [(at, line) for at, line, error in self._of(station, seq) if error is None]

    def failed(self, station: str, seq: int) -> list[tuple[float, str, str]]:
        """(time, line, error) of each write InfluxDB refused with the reading's line."""
        return [(at, line, error) for at, line, error in self._of(station, seq)
                if error is not None]

    def _of(self, station: str, seq: int) -> list[tuple[float, str, str | None]]:
        with self._lock:
            return self._by_reading.get(self.writes, (station, seq))

    def _record(self, lines: list[str], error: str | None) -> None:
        record = (time.time(), tuple(lines), error)
        with self._lock:
            self.writes.append(record)

    @staticmethod
    def _lines_of(record: tuple[float, tuple[str, ...], str | None]
                  ) -> Iterator[tuple[Key, Any]]:
        at, lines, error = record
        for line in lines:
            key = _line_key(line)
            if key is not None:
                yield key, (at, line, error)


class _Index:
    """Entries by reading, built from a growing list of records as far as it has grown (under
    its owner's lock)."""

    def __init__(self, entries_of: Callable[[Any], Iterable[tuple[Key, Any]]]) -> None:
        self._entries_of = entries_of
        self._by_key: dict[Key, list[Any]] = {}
        self._indexed = 0

    def get(self, records: list[Any], key: Key) -> list[Any]:
        for record in records[self._indexed:]:
            for k, entry in self._entries_of(record):
                self._by_key.setdefault(k, []).append(entry)
        self._indexed = len(records)
        return list(self._by_key.get(key, []))


def _line_key(line: str) -> Key | None:
    """(station, seq) of a ``readings`` line (identifiers never need escaping)."""
    try:
        series, fields, _ = line.rsplit(" ", 2)
    except ValueError:
        return None
    station = next((t[8:] for t in series.split(",")[1:] if t.startswith("station=")), None)
    seq = next((f[4:].rstrip("i") for f in fields.split(",") if f.startswith("seq=")), None)
    if station is None or seq is None:
        return None
    return station, int(seq)


def explain(missing: dict[str, list[tuple[int, str, int]]], *, store_path: str,
            tap: MqttTap | None, writer: RecordingWriter | None, influx_url: str,
            database: str, limit: int = 20) -> list[str]:
    """One paragraph per missing reading ``(seq, channel, time)`` of each station: its trace."""
    out: list[str] = []
    try:
        db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        db = None
    for station, readings in missing.items():
        for seq, channel, t in readings[:limit]:
            out.append(f"{station} seq {seq} ({channel} at {t}):")
            if db is not None:
                try:
                    row = db.execute("SELECT id, channel, ts, mantissa, exponent, flags, "
                                     "received_at, sent FROM readings WHERE station = ? AND "
                                     "seq = ?", (station, seq)).fetchone()
                    conflict = db.execute("SELECT * FROM conflicts WHERE station = ? AND "
                                          "seq = ?", (station, seq)).fetchall()
                except sqlite3.Error as e:
                    row, conflict = f"store unreadable: {e}", []
                out.append(f"  gateway store: {row if row else 'no row (pruned or never)'}"
                           + (f"; conflicts: {conflict}" if conflict else ""))
            if tap is not None:
                seen = tap.messages(station, seq)
                out.append(f"  mqtt tap: {len(seen)} message(s): "
                           + "; ".join(f"{topic} {json.dumps(r)} at {at:.3f}"
                                       for at, topic, r in seen[:3]))
            if writer is not None:
                lines = writer.written(station, seq)
                out.append(f"  ingest wrote: {len(lines)} time(s): "
                           + "; ".join(f"{line!r} at {at:.3f}" for at, line in lines[:3]))
                failed = writer.failed(station, seq)
                if failed:
                    out.append(f"  ingest writes failed: {failed[:3]}")
            try:
                q = (f"SELECT * FROM readings WHERE station = {quote_string(station)} AND "
                     f"channel = {quote_string(channel)} AND time >= {t - 1}s AND "
                     f"time <= {t + 1}s")
                rows = [row for _, rows in query(influx_url, database, q) for row in rows]
                q = (f"SELECT * FROM readings WHERE station = {quote_string(station)} AND "
                     f"seq = {seq}")
                by_seq = [row for _, rows in query(influx_url, database, q) for row in rows]
            except Exception as e:  # the report is best effort
                out.append(f"  influxdb query failed: {e!r}")
                continue
            out.append(f"  influxdb at {channel}/{t}±1 s: {rows}; with seq {seq}: {by_seq}")
    if db is not None:
        db.close()
    if tap is not None and tap.deadletters:
        out.append(f"dead letters seen: {len(tap.deadletters)}, first: "
                   f"{tap.deadletters[0][:300]!r}")
    return out
