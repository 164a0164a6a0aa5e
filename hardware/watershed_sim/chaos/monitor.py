"""What the broker carries, seen from a plain subscription of the run's own: the gateway's
retained health, the ingest's retained status, and every readings message (counted, not kept:
a long run carries millions). It reconnects after each broker kill; what the gateway publishes
while the monitor is reconnecting is not seen, so its counts are a floor.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from watershed.contracts.mqtt import Topics


class Monitor:
    def __init__(self, port: int, gateway_id: str, ingest_id: str) -> None:
        topics = Topics()
        self._health_topic = topics.health(gateway_id)
        self._status_topic = topics.ingest_status(ingest_id)
        self._filters = [(self._health_topic, 1), (self._status_topic, 1),
                         (topics.readings(gateway_id, "+"), 1)]
        self._topics = topics
        self._lock = threading.Lock()
        self.health: dict[str, Any] | None = None
        self.ingest_status: dict[str, Any] | None = None
        self.messages = 0  # readings messages seen
        self.readings = 0  # readings in them, copies included
        self.copies: Counter[tuple[str, int]] = Counter()  # (station, seq) -> times seen
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="chaos-monitor",
                                   clean_session=True)
        self._client.on_connect = lambda c, *a: c.subscribe(self._filters)
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(0.1, 1.0)  # type: ignore[arg-type]  # paho takes floats
        self._client.connect("127.0.0.1", port, keepalive=10)
        self._client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, message: Any) -> None:
        try:
            document = json.loads(message.payload)
        except ValueError:
            return
        with self._lock:
            if message.topic == self._health_topic:
                self.health = document
            elif message.topic == self._status_topic:
                self.ingest_status = document
            elif self._topics.parse_readings(message.topic) is not None:
                self.messages += 1
                station = document.get("station", "?")
                for reading in document.get("readings", ()):
                    self.readings += 1
                    self.copies[(station, reading.get("seq"))] += 1

    def snapshot(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        with self._lock:
            return self.health, self.ingest_status

    def figures(self) -> dict[str, int]:
        with self._lock:
            unique = len(self.copies)
            return {"messages_seen": self.messages, "readings_seen": self.readings,
                    "distinct_readings_seen": unique,
                    "readings_seen_more_than_once": sum(1 for n in self.copies.values() if n > 1)}

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
