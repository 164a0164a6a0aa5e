"""Forwards stored readings to the MQTT broker, QoS 1, until an ingest confirms each one.

paho keeps its session (unacknowledged QoS 1 messages) only in memory, so the store is what
makes delivery durable. A reading goes unsent -> acknowledged by the broker (PUBACK of the message
carrying it) -> confirmed, when an ingest says on ``<prefix>/v1/<gateway>/confirm`` that it is in
InfluxDB (contracts/confirm.py). The broker's acknowledgement is not the end: a broker drops
what no subscription matches, and forgets what it took since its last save when it crashes, so
unconfirmed readings are published again once overdue (redelivery.py says when: only on
evidence that they were lost, so an ingest that is merely slow gets no copies). Anything not
confirmed when the process dies waits in the store (at-least-once; consumers key on the reading's
identity).

What goes out first, every turn, within ``max_inflight`` messages awaiting PUBACK (decided by
send_order.py): flood alerts, then live readings in small messages, then the backlog in large
ones. Also retained health every ``health_interval_s``, and the gateway's command topic. What
the broker sends the gateway (confirmations, ingests' statuses, commands) is routed by
incoming.py.

Every MQTT call, and every event the session reports, happens on the forwarder's own thread,
which drives the session (watershed/mqtt) with ``loop()``: paho is not safe to publish from
several threads (paho #354/#358). Other threads only call ``notify()`` (an Event) or queue a
command result. ``step()`` is one turn of that thread, for tests to drive without it.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from watershed.contracts.mqtt import QOS, ReadingsMessage, Topics, encode_readings, encode_status

from ..backoff import Backoff
from ..mqtt import Endpoint, Handlers, Session, Will
from ..mqtt.paho_session import PahoSession
from ..mqtt.session import SessionFactory
from .config import GatewayMqttConfig
from .incoming import Incoming
from .redelivery import Redelivery
from .send_order import SendOrder
from .store import Store, StoredReading

log = logging.getLogger(__name__)

LOOP_WAIT_S = 0.1  # longest paho's network loop waits for traffic in one turn
LOOK_INTERVAL_S = 1.0  # unprompted, the store is looked at this often (notify() is immediate)
STOP_WAIT_S = 2.0  # at stop, how long the offline status may take to be acknowledged
RECONNECT_JITTER = 0.5  # up to half of each reconnect delay is random

HealthSource = Callable[[], dict[str, Any]]
CommandHandler = Callable[[bytes], None]


class Forwarder:
    """Drains the store to the broker on its own thread; see the module docstring."""

    def __init__(
        self,
        gateway_id: str,
        config: GatewayMqttConfig,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        session: SessionFactory = PahoSession,
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
        self._order = SendOrder(gateway_id, config.max_inflight, config.max_readings_per_message,
                                config.backlog_readings_per_message)
        self._last_look = 0.0
        self._next_health = 0.0
        self._other_mids: set[int] = set()  # status, health, results: nothing to mark
        self._redelivery = Redelivery(config.confirm_grace_s)
        self._store_failing = False  # the last delivery-state write failed (disk full?)
        self._stats: dict[str, int] = {"messages_published": 0, "messages_acked": 0,
                                       "readings_acked": 0, "live_readings_published": 0,
                                       "backlog_readings_published": 0, "alerts_published": 0,
                                       "confirmations": 0, "confirmations_invalid": 0,
                                       "readings_confirmed": 0, "readings_rejected": 0,
                                       "readings_resent": 0,
                                       "connects": 0, "disconnects": 0, "connect_failures": 0,
                                       "errors": 0, "commands_received": 0,
                                       "commands_rejected": 0}
        self._incoming = Incoming(gateway_id, self._topics, store, self._redelivery, self._stats,
                                  self._write_state, clock=clock, on_command=on_command)
        self._client: Session = session(self._endpoint(), Handlers(
            on_connect=self._on_connect, on_disconnect=self._on_disconnect,
            on_subscribe=self._on_subscribe, on_publish=self._on_publish,
            on_message=self._incoming.on_message))

    # --- public, any thread -----------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def last_confirmation_at(self) -> float | None:
        """When an ingest last confirmed readings (the alarms' view); None: not since start."""
        return self._incoming.last_confirmation_at

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

    def stats(self) -> dict[str, Any]:
        return {**self._stats, "connected": self._connected, "inflight": self._order.inflight,
                "backlog_draining": self._connected and not self._order.backlog_done,
                "ingests": self._redelivery.ingests()}

    # --- the client -------------------------------------------------------------------

    def _endpoint(self) -> Endpoint:
        c = self.config
        return c.endpoint(
            self.gateway_id, keepalive_s=c.keepalive_s, clean_session=False,
            will=Will(self._topics.status(self.gateway_id), self._status("offline"), QOS, True),
            # The session's own bound matches ours, so nothing piles up inside paho unseen.
            max_inflight=c.max_inflight)

    def _status(self, state: str) -> bytes:
        return encode_status(self.gateway_id, state, int(self._clock()))

    # --- the forwarder thread ---------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.heartbeat = time.monotonic()
            self.step()
        self._flush()
        self._go_offline()

    def step(self) -> None:
        """One turn: (re)connect if due, run the session's network loop, publish what fits."""
        try:
            if not self._socket_open:
                self._connect_when_due()
                return
            lost = self._client.loop(0 if self._wake.is_set() else LOOP_WAIT_S)
            if lost is not None:
                self._lost_connection(f"network loop: {lost}")
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
            self._client.connect()
            self._socket_open = True
        except OSError as e:  # socket.timeout included
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
        self._order.restart(self._store.max_id())

    def _on_connect(self, session_present: bool, refused: str | None) -> None:
        if refused is not None:
            # The broker closes the socket; the network loop then reports it and we back off.
            self._stats["connect_failures"] += 1
            log.error("forwarder: broker refused the connection: %s", refused)
            return
        self._connected = True
        self._stats["connects"] += 1
        self._stats["connect_failures"] = 0
        self._backoff.reset()
        self._restart_cursors()
        # Every connection: a broker that lost its store lost our subscriptions too.
        client = self._client
        client.subscribe(self._incoming.confirm_topic, QOS)
        client.subscribe(self._incoming.ingest_filter, QOS)
        self._other_mids.add(client.publish(self._topics.status(self.gateway_id),
                                            self._status("online"), QOS, retain=True))
        if self._on_command is not None:
            client.subscribe(self._incoming.command_topic, QOS)
        self._next_health = 0.0
        log.info("forwarder: connected to %s:%d (session present: %s), %d messages in flight",
                 self.config.host, self.config.port, session_present, self._order.inflight)
        self._wake.set()

    def _on_subscribe(self, refused: list[str]) -> None:
        if refused:
            log.error("forwarder: the broker refused a subscription (%s or %s): without"
                      " confirmations every reading stays in the store; check the broker's ACL",
                      self._incoming.confirm_topic, self._incoming.ingest_filter)

    def _on_disconnect(self, reason: str) -> None:
        if self._connected:
            self._stats["disconnects"] += 1
        self._connected = False

    def _on_publish(self, mid: int) -> None:
        if mid in self._other_mids:
            self._other_mids.discard(mid)
            return
        done = self._order.acknowledged(mid)
        if done is None:
            return
        if done.alert is not None:
            alert_id = done.alert
            self._write_state(lambda: self._store.mark_alert_sent(alert_id), "mark an alert sent")
            return
        ids = done.readings
        # Noted at once, in arrival order: a confirmation that follows it in the same turn
        # finds it (the store batches the writes: store/delivery.py).
        self._write_state(lambda: self._store.mark_published(ids), "mark readings published")
        self._stats["messages_acked"] += 1
        self._stats["readings_acked"] += len(ids)
        self._wake.set()

    def _write_state(self, action: Callable[[], Any], what: str) -> Any:
        """Record a delivery state in the store; None if the store refused (disk full). Such a
        failure costs at most a duplicate publish later, never a reading, so it is logged once
        per change of state, not per message, and nothing is republished because of it."""
        try:
            result = action()
        except Exception as e:
            self._stats["errors"] += 1
            if not self._store_failing:
                self._store_failing = True
                log.error("forwarder: cannot %s in the store (%s); readings stay in the "
                          "must-deliver set and may go out twice", what, e)
            return None
        if self._store_failing:
            self._store_failing = False
            log.info("forwarder: the store takes delivery states again")
        return True if result is None else result

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
        self._resend_overdue()
        self._publish_live()
        self._publish_backlog()

    def _resend_overdue(self) -> None:
        """Unconfirmed readings the evidence says were lost go back to unsent (redelivery.py)."""
        before = self._redelivery.resend_before()
        if before is None:
            return
        resent = self._write_state(lambda: self._store.resend_unconfirmed(before),
                                   "flag overdue readings for resending")
        if not resent:
            return
        self._stats["readings_resent"] += resent
        log.info("forwarder: publishing again %d readings the broker acknowledged but no ingest"
                 " confirmed (lost between broker and ingest)", resent)
        self._restart_cursors()  # they are backlog now, below the cursors

    def _publish_alerts(self) -> None:
        page = self._order.alert_page()
        if page is None:
            return
        for alert_id, station, payload in self._order.took_alerts(
                self._store.unsent_alerts(page.limit, page.after_id)):
            self._order.sent_alert(self._client.publish(
                self._topics.alert(self.gateway_id, station), payload.encode(), QOS), alert_id)
            self._stats["alerts_published"] += 1

    def _publish_live(self) -> None:
        page = self._order.live_page()
        if page is not None:
            self._stats["live_readings_published"] += self._publish(self._order.took_live(
                self._store.unsent(page.limit, after_id=page.after_id)))

    def _publish_backlog(self) -> None:
        page = self._order.backlog_page()
        if page is not None:
            self._stats["backlog_readings_published"] += self._publish(self._order.took_backlog(
                self._store.unsent(page.limit, after_id=page.after_id, up_to_id=page.up_to_id)))

    def _publish(self, messages: list[tuple[ReadingsMessage, list[StoredReading]]]) -> int:
        for message, rows in messages:
            self._order.sent(self._client.publish(
                self._topics.readings(self.gateway_id, message.station), encode_readings(message),
                QOS), rows)
            self._stats["messages_published"] += 1
        return sum(len(rows) for _, rows in messages)

    def _publish_results(self) -> None:
        while self._results:
            self._other_mids.add(self._client.publish(
                self._topics.command_result(self.gateway_id), self._results.popleft(), QOS))

    def _publish_health_if_due(self) -> None:
        if self._health is None or time.monotonic() < self._next_health:
            return
        self._next_health = time.monotonic() + self._health_interval_s
        try:
            health = self._health()
        except Exception:
            log.exception("forwarder: could not gather health")
            return
        health["forwarder"] = self.stats()
        self._other_mids.add(self._client.publish(
            self._topics.health(self.gateway_id),
            json.dumps(health, separators=(",", ":")).encode(), QOS, retain=True))

    # --- stopping ---------------------------------------------------------------------

    def _flush(self) -> None:
        """Keep publishing until the store is drained and acknowledged, or time is up."""
        while time.monotonic() < self._flush_deadline and self._socket_open:
            self._wake.set()
            self.step()
            if self._connected and self._order.idle and not self._store.unsent(1):
                return
        if not self._order.idle or self._store.unsent(1):
            log.info("forwarder: stopping with readings unsent; they stay in the store")

    def _go_offline(self) -> None:
        """A clean disconnect does not fire the last will, so say "offline" ourselves."""
        if self._connected:
            mid = self._client.publish(self._topics.status(self.gateway_id),
                                       self._status("offline"), QOS, retain=True)
            self._other_mids.add(mid)
            deadline = time.monotonic() + STOP_WAIT_S
            while mid in self._other_mids and self._connected and time.monotonic() < deadline:
                self._client.loop(LOOP_WAIT_S)
            self._client.disconnect()
            self._client.loop(0)
        self._connected = False
        self._socket_open = False
        log.info("forwarder: stopped (%d messages published, %d acknowledged)",
                 self._stats["messages_published"], self._stats["messages_acked"])
