"""Forwards stored readings to the MQTT broker, QoS 1, marking them sent only on PUBACK.

paho keeps its session (unacknowledged QoS 1 messages) only in memory, so the store is what
makes delivery durable: a row is marked sent in ``on_publish`` for the message that carried
it, and anything unmarked when the process dies is published again after a restart
(at-least-once; consumers key on the reading's identity).

Every paho call, callbacks included, happens on the forwarder's own thread, which drives the
client with ``loop()``: paho is not safe to publish from several threads (anchors.md). Other
threads only call ``notify()`` (an Event).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from watershed.contracts.mqtt import QOS, ReadingsMessage, Topics, encode_readings, encode_status

from .backoff import Backoff
from .config import MqttConfig
from .store import Store, StoredReading

log = logging.getLogger(__name__)

LOOP_WAIT_S = 0.1  # longest paho's network loop waits for traffic in one turn
LOOK_INTERVAL_S = 1.0  # unprompted, the store is looked at this often (notify() is immediate)
STOP_WAIT_S = 2.0  # at stop, how long the offline status may take to be acknowledged

Key = tuple[str, int]  # (station, seq)


def group_messages(rows: Iterable[StoredReading], gateway: str, max_per_message: int
                   ) -> list[tuple[ReadingsMessage, list[Key]]]:
    """Readings messages of up to ``max_per_message`` readings of one station and basin, in
    order of the first reading of each, with the store keys each message carries."""
    groups: dict[tuple[str, str], list[StoredReading]] = {}
    for row in rows:
        groups.setdefault((row.station, row.basin), []).append(row)
    messages = []
    for (station, basin), group in groups.items():
        for i in range(0, len(group), max_per_message):
            chunk = group[i:i + max_per_message]
            message = ReadingsMessage(gateway, station, basin, tuple(r.reading for r in chunk))
            messages.append((message, [r.key for r in chunk]))
    return messages


class Forwarder:
    """Drains the store to the broker on its own thread; see the module docstring."""

    def __init__(
        self,
        gateway_id: str,
        config: MqttConfig,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        client_factory: Callable[[str], mqtt.Client] | None = None,
    ) -> None:
        self.gateway_id = gateway_id
        self.config = config
        self._store = store
        self._clock = clock
        self._topics = Topics(config.prefix)
        self._client = (client_factory or self._make_client)(gateway_id)
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s)
        self._wake = threading.Event()  # new readings stored, or stop requested
        self._stopping = threading.Event()
        self._flush_deadline = 0.0
        self._thread = threading.Thread(target=self._run, name="forwarder", daemon=True)
        # Owned by the forwarder thread:
        self._socket_open = False
        self._connected = False
        self._next_attempt = 0.0
        self._ever_connected = False
        self._cursor = 0  # highest store id handed to paho; rows above it are not in flight
        self._last_look = 0.0
        self._inflight: dict[int, list[Key]] = {}  # mid -> keys of the readings it carries
        self._status_mid: int | None = None
        self._stats: dict[str, int] = {"messages_published": 0, "messages_acked": 0,
                                       "readings_acked": 0, "connects": 0, "disconnects": 0,
                                       "connect_failures": 0, "errors": 0}

    # --- public, any thread -----------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """New readings are in the store: publish them without waiting for the next look."""
        self._wake.set()

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Publish what is stored (for up to ``flush_timeout_s`` if the broker is there), then
        publish the retained offline status and disconnect. Unsent rows stay in the store."""
        self._flush_deadline = time.monotonic() + flush_timeout_s
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(flush_timeout_s + STOP_WAIT_S + 5)

    def stats(self) -> dict[str, Any]:
        return {**self._stats, "connected": self._connected, "inflight": len(self._inflight)}

    # --- the client -------------------------------------------------------------------

    def _make_client(self, client_id: str) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                             protocol=mqtt.MQTTv311)
        if self.config.username:
            client.username_pw_set(self.config.username, self.config.password or None)
        return client

    def _configure(self) -> None:
        client = self._client
        client.will_set(self._topics.status(self.gateway_id), self._status("offline"), qos=QOS,
                        retain=True)
        # paho's own bound matches ours, so nothing piles up inside paho unseen.
        client.max_inflight_messages_set(self.config.max_inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish

    def _status(self, state: str) -> bytes:
        return encode_status(self.gateway_id, state, int(self._clock()))

    # --- the forwarder thread ---------------------------------------------------------

    def _run(self) -> None:
        self._configure()
        while not self._stopping.is_set():
            self._step()
        self._flush()
        self._go_offline()

    def _step(self) -> None:
        """One turn: (re)connect if due, run paho's network loop, publish what fits."""
        try:
            if not self._socket_open:
                self._connect_when_due()
                return
            rc = self._client.loop(timeout=0 if self._wake.is_set() else LOOP_WAIT_S)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._lost_connection(f"network loop: {mqtt.error_string(rc)}")
                return
            if self._connected:
                self._publish_pending()
        except Exception:
            # Never let the forwarder die quietly while the links keep storing.
            self._stats["errors"] += 1
            log.exception("forwarder: unexpected error")
            self._cursor = 0  # look at every unsent row again; in-flight ones are skipped
            self._lost_connection("unexpected error")

    def _connect_when_due(self) -> None:
        wait = self._next_attempt - time.monotonic()
        if wait > 0:
            self._wake.wait(min(wait, LOOP_WAIT_S))
            self._wake.clear()
            return
        try:
            if self._ever_connected:
                self._client.reconnect()
            else:
                self._client.connect(self.config.host, self.config.port, self.config.keepalive_s)
                self._ever_connected = True
            self._socket_open = True
        except (OSError, socket.timeout) as e:
            self._stats["connect_failures"] += 1
            delay = self._backoff.next_delay()
            self._next_attempt = time.monotonic() + delay
            level = logging.WARNING if self._stats["connect_failures"] == 1 else logging.DEBUG
            log.log(level, "forwarder: broker %s:%d unreachable (%s); retrying in %.1f s",
                    self.config.host, self.config.port, e, delay)

    def _lost_connection(self, why: str) -> None:
        if self._socket_open:
            log.warning("forwarder: connection to the broker lost (%s)", why)
        self._socket_open = False
        self._connected = False
        self._next_attempt = time.monotonic() + self._backoff.next_delay()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            # The broker closes the socket; the network loop then reports it and we back off.
            self._stats["connect_failures"] += 1
            log.error("forwarder: broker refused the connection: %s", reason_code)
            return
        self._connected = True
        self._stats["connects"] += 1
        self._stats["connect_failures"] = 0
        self._backoff.reset()
        info = client.publish(self._topics.status(self.gateway_id), self._status("online"),
                              qos=QOS, retain=True)
        self._status_mid = info.mid
        log.info("forwarder: connected to %s:%d (session present: %s), %d messages in flight",
                 self.config.host, self.config.port, flags.session_present, len(self._inflight))
        self._wake.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        if self._connected:
            self._stats["disconnects"] += 1
        self._connected = False

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any,
                    properties: Any) -> None:
        if mid == self._status_mid:
            self._status_mid = None
            return
        keys = self._inflight.pop(mid, None)
        if keys is None:
            return
        try:
            self._store.mark_sent(keys)
        except Exception:
            # The broker has them, the store does not know: publish again rather than lose.
            log.exception("forwarder: could not mark %d readings sent; they will be republished",
                          len(keys))
            self._cursor = 0
            self._stats["errors"] += 1
            self._wake.set()
            return
        self._stats["messages_acked"] += 1
        self._stats["readings_acked"] += len(keys)
        self._wake.set()

    def _publish_pending(self) -> None:
        room = self.config.max_inflight - len(self._inflight)
        due = self._wake.is_set() or time.monotonic() - self._last_look >= LOOK_INTERVAL_S
        if room <= 0 or not due:
            return
        self._wake.clear()
        self._last_look = time.monotonic()
        rows = self._store.unsent(room * self.config.max_readings_per_message,
                                  after_id=self._cursor)
        inflight_keys = {key for keys in self._inflight.values() for key in keys} if (
            self._cursor == 0 and self._inflight) else set()
        rows = [row for row in rows if row.key not in inflight_keys]
        if not rows:
            return
        for message, keys in group_messages(rows, self.gateway_id,
                                            self.config.max_readings_per_message):
            info = self._client.publish(self._topics.readings(self.gateway_id, message.station),
                                        encode_readings(message), qos=QOS)
            self._inflight[info.mid] = keys
            self._stats["messages_published"] += 1
        self._cursor = rows[-1].id

    # --- stopping ---------------------------------------------------------------------

    def _flush(self) -> None:
        """Keep publishing until the store is drained and acknowledged, or time is up."""
        while time.monotonic() < self._flush_deadline and self._socket_open:
            self._step()
            if self._connected and not self._inflight and not self._store.unsent(1):
                return
        if self._inflight or self._store.unsent(1):
            log.info("forwarder: stopping with readings unsent; they stay in the store")

    def _go_offline(self) -> None:
        """A clean disconnect does not fire the last will, so say "offline" ourselves."""
        if self._connected:
            info = self._client.publish(self._topics.status(self.gateway_id),
                                        self._status("offline"), qos=QOS, retain=True)
            self._status_mid = info.mid
            deadline = time.monotonic() + STOP_WAIT_S
            while self._status_mid is not None and self._connected and time.monotonic() < deadline:
                self._client.loop(timeout=LOOP_WAIT_S)
            self._client.disconnect()
            self._client.loop(timeout=0)
        self._connected = False
        self._socket_open = False
        log.info("forwarder: stopped (%d messages published, %d acknowledged)",
                 self._stats["messages_published"], self._stats["messages_acked"])
