"""Forwards stored readings to the MQTT broker, QoS 1, marking them sent only on PUBACK.

paho keeps its session (unacknowledged QoS 1 messages) only in memory, so the store is what
makes delivery durable: a row is marked sent in ``on_publish`` for the message that carried
it, and anything unmarked when the process dies is published again after a restart
(at-least-once; consumers key on the reading's identity).

What goes out first, every turn, within ``max_inflight`` messages awaiting PUBACK:
1. flood alerts (store ``alerts``), ahead of everything;
2. live readings: stored since the connection came up, in small messages, at once;
3. the backlog: everything older, streamed from the store by an id cursor in large messages
   (``backlog_readings_per_message``), never taking the slots kept for live readings. Memory is
   bounded by the in-flight window, however many readings wait.
Also retained health every ``health_interval_s``, and the gateway's command topic.

**No readings before a consumer exists** (``[mqtt] require_consumer``, default on). A broker
PUBACKs a QoS 1 message that matches no subscription and then drops it, so on a fresh broker
(first install, or one that lost its persistence) readings published before the ingest's
persistent session has subscribed would be marked sent and lost. The forwarder therefore
subscribes to ``<prefix>/v1/ingest/+/status`` and publishes readings only while the broker holds
a retained status there, in any state: an "offline" ingest whose persistent session exists
still has messages queued for it. Until then readings stay in the store (unsent, durable;
``held_for_consumer`` in health) and a log line says so. Alerts are for anyone listening: they
are never held. An ingest publishes its status only after its SUBACK (contracts.md 2).

**Replay after a reconnect** (``[mqtt] replay_window_s``). A broker saves its store every few
seconds, not per message (deploy/mosquitto/watershed.conf says why), so one that crashes comes
back without what it acknowledged since its last save. The gateway cannot tell such a restart from
a dropped link, so after every reconnect it publishes again the readings acknowledged within the
window before its last acknowledgement; the ingest writes a reading twice to the same point.
It remembers, in memory, one id range per acknowledged message: a gateway restart forgets them.

Every paho call, callbacks included, happens on the forwarder's own thread, which drives the
client with ``loop()``: paho is not safe to publish from several threads. Other
threads only call ``notify()`` (an Event) or queue a command result.
"""

from __future__ import annotations

import collections
import json
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
CONSUMER_GRACE_S = 1.0  # after the SUBACK, retained consumer statuses have this long to arrive
HOLD_LOG_INTERVAL_S = 600.0  # while readings are held for a consumer, say so this often
STOP_WAIT_S = 2.0  # at stop, how long the offline status may take to be acknowledged
RECONNECT_JITTER = 0.5  # up to half of each reconnect delay is random

Key = tuple[str, int]  # (station, seq)
HealthSource = Callable[[], dict[str, Any]]
CommandHandler = Callable[[bytes], None]


def group_messages(rows: Iterable[StoredReading], gateway: str, max_per_message: int
                   ) -> list[tuple[ReadingsMessage, list[Key]]]:
    """Readings messages of up to ``max_per_message`` readings of one station and basin, in
    order of the first reading of each, with the store keys each message carries."""
    return [(message, [r.key for r in chunk])
            for message, chunk in _grouped(rows, gateway, max_per_message)]


def _grouped(rows: Iterable[StoredReading], gateway: str, max_per_message: int
             ) -> list[tuple[ReadingsMessage, list[StoredReading]]]:
    groups: dict[tuple[str, str], list[StoredReading]] = {}
    for row in rows:
        groups.setdefault((row.station, row.basin), []).append(row)
    messages = []
    for (station, basin), group in groups.items():
        for i in range(0, len(group), max_per_message):
            chunk = group[i:i + max_per_message]
            messages.append((ReadingsMessage(gateway, station, basin,
                                             tuple(r.reading for r in chunk)), chunk))
    return messages


def live_reserve(max_inflight: int) -> int:
    """In-flight slots the backlog leaves free, so a live reading never waits behind it."""
    return max_inflight // 4 if max_inflight >= 4 else min(1, max_inflight - 1)


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
        health: HealthSource | None = None,
        health_interval_s: float = 60.0,
        on_command: CommandHandler | None = None,
    ) -> None:
        self.gateway_id = gateway_id
        self.config = config
        self._store = store
        self._clock = clock
        self._topics = Topics(config.prefix)
        self._health = health
        self._health_interval_s = health_interval_s
        self._on_command = on_command
        self._client = (client_factory or self._make_client)(gateway_id)
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s, RECONNECT_JITTER)
        self._wake = threading.Event()  # new readings stored, or stop requested
        self._stopping = threading.Event()
        self._flush_deadline = 0.0
        self._thread = threading.Thread(target=self._run, name="forwarder", daemon=True)
        self._results: collections.deque[bytes] = collections.deque(maxlen=1000)
        self.heartbeat = time.monotonic()  # last turn of the loop: the watchdog's view
        # Owned by the forwarder thread:
        self._socket_open = False
        self._connected = False
        self._next_attempt = 0.0
        self._ever_connected = False
        self._live_from = 0  # rows above this id arrived while connected: live
        self._live_cursor = 0  # highest live id handed to paho
        self._backlog_cursor = 0  # highest backlog id handed to paho
        self._backlog_done = False
        self._alert_cursor = 0
        self._last_look = 0.0
        self._next_health = 0.0
        self._inflight: dict[int, list[int]] = {}  # mid -> store ids of the readings it carries
        self._inflight_ids: set[int] = set()
        self._inflight_alerts: dict[int, int] = {}  # mid -> alert id
        self._other_mids: set[int] = set()  # status, health, results: nothing to mark
        # (monotonic time of the PUBACK, first id, last id) per acknowledged readings message,
        # the last replay_window_s of them: what a reconnect publishes again.
        self._acked_recently: collections.deque[tuple[float, int, int]] = collections.deque()
        # The consumer interlock (module docstring): ingest id -> state of each retained
        # status seen on this connection.
        self._consumer_filter = self._topics.ingest_status("+")
        self._consumers: dict[str, str] = {}
        self._consumer_sub_mid: int | None = None
        self._consumer_settled_at: float | None = None  # monotonic: SUBACK + grace
        self._next_hold_log = 0.0
        self._stats: dict[str, int] = {"messages_published": 0, "messages_acked": 0,
                                       "readings_acked": 0, "live_readings_published": 0,
                                       "backlog_readings_published": 0, "alerts_published": 0,
                                       "readings_republished_after_session_loss": 0,
                                       "readings_replayed_after_reconnect": 0,
                                       "connects": 0, "disconnects": 0, "connect_failures": 0,
                                       "errors": 0, "commands_received": 0,
                                       "commands_rejected": 0}

    # --- public, any thread -----------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """New readings (or an alert) are in the store: publish without waiting."""
        self._wake.set()

    def publish_result(self, payload: bytes) -> None:
        """Queue a command result for the ``…/cmd/result`` topic (not stored: best effort)."""
        self._results.append(payload)
        self._wake.set()

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Publish what is stored (for up to ``flush_timeout_s`` if the broker is there), then
        publish the retained offline status and disconnect. Unsent rows stay in the store."""
        self._flush_deadline = time.monotonic() + flush_timeout_s
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(flush_timeout_s + STOP_WAIT_S + 5)

    @property
    def held_for_consumer(self) -> bool:
        """Readings are held: a consumer is required and the broker holds no retained ingest
        status (none seen yet on this connection)."""
        return self.config.require_consumer and not self._consumers

    def stats(self) -> dict[str, Any]:
        held = self.held_for_consumer
        return {**self._stats, "connected": self._connected, "inflight": len(self._inflight),
                "backlog_draining": self._connected and not held and not self._backlog_done,
                "held_for_consumer": held, "consumers": dict(self._consumers)}

    # --- the client -------------------------------------------------------------------

    def _make_client(self, client_id: str) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                             protocol=mqtt.MQTTv311)
        if self.config.username:
            client.username_pw_set(self.config.username, self.config.password or None)
        if self.config.tls:
            client.tls_set(ca_certs=self.config.ca_file or None,
                           certfile=self.config.cert_file or None,
                           keyfile=self.config.key_file or None)
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
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe

    def _status(self, state: str) -> bytes:
        return encode_status(self.gateway_id, state, int(self._clock()))

    # --- the forwarder thread ---------------------------------------------------------

    def _run(self) -> None:
        self._configure()
        while not self._stopping.is_set():
            self.heartbeat = time.monotonic()
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
            self._restart_cursors()  # look at every unsent row again; in-flight ones skipped
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

    def _restart_cursors(self) -> None:
        """What is stored now is backlog; everything after is live."""
        self._live_from = self._live_cursor = self._store.max_id()
        self._backlog_cursor = 0
        self._backlog_done = False
        self._alert_cursor = 0

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
        self._replay_acked_recently()
        self._restart_cursors()
        if self.config.require_consumer:
            self._watch_for_consumer(client, flags.session_present)
        info = client.publish(self._topics.status(self.gateway_id), self._status("online"),
                              qos=QOS, retain=True)
        self._other_mids.add(info.mid)
        if self._on_command is not None:
            client.subscribe(self._topics.command(self.gateway_id), qos=QOS)
        self._next_health = 0.0
        log.info("forwarder: connected to %s:%d (session present: %s), %d messages in flight",
                 self.config.host, self.config.port, flags.session_present, len(self._inflight))
        self._wake.set()

    def _watch_for_consumer(self, client: mqtt.Client, session_present: bool) -> None:
        """Learn afresh, on every connection, whether the broker knows a consumer: the
        retained statuses come again after the SUBACK (a broker that lost its persistence
        lost them too)."""
        self._consumers.clear()
        self._consumer_settled_at = None
        if not session_present and self._inflight:
            # The broker kept no session of ours: it may have lost the ingest's too. paho
            # resends these at once; their PUBACKs prove nothing, so they mark nothing and the
            # readings go again once a consumer is known (at least once, never lost).
            n = len(self._inflight_ids)
            log.warning("forwarder: the broker has no session of this gateway (restarted "
                        "without its persistence?): %d readings in flight will be published "
                        "again once an ingest is known", n)
            self._stats["readings_republished_after_session_loss"] += n
            self._inflight.clear()
            self._inflight_ids.clear()
        _, self._consumer_sub_mid = client.subscribe(self._consumer_filter, qos=QOS)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reason_codes: list[Any], properties: Any) -> None:
        if mid != self._consumer_sub_mid:
            return
        if any(rc.is_failure for rc in reason_codes):
            log.error("forwarder: the broker refused the subscription to %s (ACL?): readings are"
                      " held until it is allowed, or set [mqtt] require_consumer = false",
                      self._consumer_filter)
            self._consumer_settled_at = time.monotonic()  # nothing will come
        else:
            self._consumer_settled_at = time.monotonic() + CONSUMER_GRACE_S
        self._next_hold_log = self._consumer_settled_at

    def _consumer_id(self, topic: str) -> str | None:
        """The ingest id of a topic matching ``<prefix>/v1/ingest/+/status``, else None."""
        head, _, tail = self._consumer_filter.partition("+")
        if topic.startswith(head) and topic.endswith(tail):
            ident = topic[len(head):len(topic) - len(tail)]
            if ident and "/" not in ident:
                return ident
        return None

    def _on_consumer_status(self, ingest_id: str, payload: bytes) -> None:
        was_held = self.held_for_consumer
        if not payload:  # the retained status was cleared: that consumer is gone
            self._consumers.pop(ingest_id, None)
        else:
            try:
                state = str(json.loads(payload).get("state", "?"))
            except (ValueError, AttributeError):
                state = "?"  # any retained status counts (another consumer's own format)
            self._consumers[ingest_id] = state
        if was_held and not self.held_for_consumer:
            # Held readings are backlog now: large messages, live ones still go first.
            self._restart_cursors()
            log.info("forwarder: ingest %s is known to the broker (retained status %r): "
                     "publishing readings (%d stored unsent)", ingest_id,
                     self._consumers[ingest_id], self._store.counts()["unsent"])
        elif not was_held and self.held_for_consumer:
            log.warning("forwarder: the retained status of ingest %s was cleared and no other "
                        "ingest is known: holding readings", ingest_id)
            self._next_hold_log = time.monotonic() + HOLD_LOG_INTERVAL_S
        else:
            return
        self._next_health = 0.0  # the change shows in health at once
        self._wake.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        if self._connected:
            self._stats["disconnects"] += 1
        self._connected = False

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        ingest_id = self._consumer_id(message.topic)
        if ingest_id is not None:
            self._on_consumer_status(ingest_id, bytes(message.payload))
            return
        # Only the gateway's own command topic: a retained or stray message elsewhere (a
        # broker ACL mistake, a wildcard) must never drive its stations.
        if message.topic != self._topics.command(self.gateway_id) or message.retain:
            self._stats["commands_rejected"] += 1
            log.warning("forwarder: ignored a message on %s (retained: %s); commands are taken"
                        " only from %s", message.topic, bool(message.retain),
                        self._topics.command(self.gateway_id))
            return
        self._stats["commands_received"] += 1
        if self._on_command is not None:
            self._on_command(bytes(message.payload))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any,
                    properties: Any) -> None:
        if mid in self._other_mids:
            self._other_mids.discard(mid)
            return
        alert_id = self._inflight_alerts.pop(mid, None)
        if alert_id is not None:
            self._mark(lambda: self._store.mark_alert_sent(alert_id), "an alert")
            return
        ids = self._inflight.pop(mid, None)
        if ids is None:
            return
        self._inflight_ids.difference_update(ids)
        if self._mark(lambda: self._store.mark_sent_ids(ids), f"{len(ids)} readings"):
            self._stats["messages_acked"] += 1
            self._stats["readings_acked"] += len(ids)
            self._remember_acked(ids)
        self._wake.set()

    def _remember_acked(self, ids: list[int]) -> None:
        window = self.config.replay_window_s
        if window <= 0 or not ids:
            return
        now = time.monotonic()
        self._acked_recently.append((now, min(ids), max(ids)))
        while self._acked_recently[0][0] < now - window:
            self._acked_recently.popleft()

    def _replay_acked_recently(self) -> None:
        """Flag what the broker acknowledged in the window unsent: it goes out again."""
        if not self._acked_recently:
            return
        ranges = [(first, last) for _, first, last in self._acked_recently]
        self._acked_recently.clear()
        try:
            replayed = self._store.mark_unsent_ranges(ranges)
        except Exception:
            self._stats["errors"] += 1
            log.exception("forwarder: could not flag recently acknowledged readings for replay")
            return
        self._stats["readings_replayed_after_reconnect"] += replayed
        if replayed:
            log.info("forwarder: publishing again %d readings the broker acknowledged in the %g s"
                     " before the connection was lost (it may have lost them)", replayed,
                     self.config.replay_window_s)

    def _mark(self, action: Callable[[], object], what: str) -> bool:
        try:
            action()
            return True
        except Exception:
            # The broker has them, the store does not know: publish again rather than lose.
            log.exception("forwarder: could not mark %s sent; republishing", what)
            self._restart_cursors()
            self._stats["errors"] += 1
            self._wake.set()
            return False

    # --- what to publish --------------------------------------------------------------

    def _publish_pending(self) -> None:
        self._publish_results()
        self._publish_health_if_due()
        due = self._wake.is_set() or time.monotonic() - self._last_look >= LOOK_INTERVAL_S
        if not due:
            return
        self._wake.clear()
        self._last_look = time.monotonic()
        self._publish_alerts()
        if self.held_for_consumer:
            self._log_hold_if_due()
            return
        self._publish_live()
        self._publish_backlog()

    def _consumer_settled(self) -> bool:
        """The retained consumer statuses, if any, have had time to arrive."""
        settled_at = self._consumer_settled_at
        return settled_at is not None and time.monotonic() >= settled_at

    def _log_hold_if_due(self) -> None:
        if not self._consumer_settled() or time.monotonic() < self._next_hold_log:
            return
        self._next_hold_log = time.monotonic() + HOLD_LOG_INTERVAL_S
        log.warning("forwarder: no ingest has subscribed on this broker yet (no retained status "
                    "on %s): holding %d readings; a broker acknowledges and drops what no "
                    "subscription matches. Start the ingest (or set [mqtt] require_consumer ="
                    " false for another consumer)", self._consumer_filter,
                    self._store.counts()["unsent"])

    def _room(self) -> int:
        return self.config.max_inflight - len(self._inflight) - len(self._inflight_alerts)

    def _publish_alerts(self) -> None:
        room = self._room()
        if room <= 0:
            return
        for alert_id, station, payload in self._store.unsent_alerts(room, self._alert_cursor):
            if alert_id in self._inflight_alerts.values():
                continue
            info = self._client.publish(self._topics.alert(self.gateway_id, station),
                                        payload.encode(), qos=QOS)
            self._inflight_alerts[info.mid] = alert_id
            self._alert_cursor = alert_id
            self._stats["alerts_published"] += 1

    def _publish_live(self) -> None:
        room = self._room()
        if room <= 0:
            return
        per_message = self.config.max_readings_per_message
        rows = self._store.unsent(room * per_message, after_id=self._live_cursor)
        if rows:
            self._live_cursor = rows[-1].id
            self._stats["live_readings_published"] += self._publish_rows(rows, per_message)

    def _publish_backlog(self) -> None:
        room = self._room() - live_reserve(self.config.max_inflight)
        if room <= 0 or self._backlog_done:
            return
        per_message = self.config.backlog_readings_per_message
        rows = self._store.unsent(room * per_message, after_id=self._backlog_cursor,
                                  up_to_id=self._live_from)
        if not rows:
            self._backlog_done = True
            return
        self._backlog_cursor = rows[-1].id
        self._stats["backlog_readings_published"] += self._publish_rows(rows, per_message)

    def _publish_rows(self, rows: list[StoredReading], per_message: int) -> int:
        # A row already in flight (published before a reconnect; paho resends it) is skipped.
        rows = [row for row in rows if row.id not in self._inflight_ids]
        for message, chunk in _grouped(rows, self.gateway_id, per_message):
            info = self._client.publish(self._topics.readings(self.gateway_id, message.station),
                                        encode_readings(message), qos=QOS)
            ids = [r.id for r in chunk]
            self._inflight[info.mid] = ids
            self._inflight_ids.update(ids)
            self._stats["messages_published"] += 1
        return len(rows)

    def _publish_results(self) -> None:
        while self._results:
            info = self._client.publish(self._topics.command_result(self.gateway_id),
                                        self._results.popleft(), qos=QOS)
            self._other_mids.add(info.mid)

    def _publish_health_if_due(self) -> None:
        if self._health is None or time.monotonic() < self._next_health:
            return
        if self.held_for_consumer and not self._consumer_settled():
            return  # just connected: the retained statuses are on their way, not "held" yet
        self._next_health = time.monotonic() + self._health_interval_s
        try:
            health = self._health()
        except Exception:
            log.exception("forwarder: could not gather health")
            return
        health["forwarder"] = self.stats()
        info = self._client.publish(self._topics.health(self.gateway_id),
                                    json.dumps(health, separators=(",", ":")).encode(),
                                    qos=QOS, retain=True)
        self._other_mids.add(info.mid)

    # --- stopping ---------------------------------------------------------------------

    def _flush(self) -> None:
        """Keep publishing until the store is drained and acknowledged, or time is up."""
        while time.monotonic() < self._flush_deadline and self._socket_open:
            self._wake.set()
            self._step()
            if self._connected and not self._inflight:
                if not self._store.unsent(1):
                    return
                if self.held_for_consumer and self._consumer_settled():
                    break  # held for a consumer: nothing more will go
        if self._inflight or self._store.unsent(1):
            log.info("forwarder: stopping with readings unsent; they stay in the store")

    def _go_offline(self) -> None:
        """A clean disconnect does not fire the last will, so say "offline" ourselves."""
        if self._connected:
            info = self._client.publish(self._topics.status(self.gateway_id),
                                        self._status("offline"), qos=QOS, retain=True)
            self._other_mids.add(info.mid)
            deadline = time.monotonic() + STOP_WAIT_S
            while info.mid in self._other_mids and self._connected and time.monotonic() < deadline:
                self._client.loop(timeout=LOOP_WAIT_S)
            self._client.disconnect()
            self._client.loop(timeout=0)
        self._connected = False
        self._socket_open = False
        log.info("forwarder: stopped (%d messages published, %d acknowledged)",
                 self._stats["messages_published"], self._stats["messages_acked"])
