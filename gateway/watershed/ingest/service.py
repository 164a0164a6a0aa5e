"""The ingest service: MQTT readings in, InfluxDB points out, each message acked once written.

Two threads (and the worker's write threads):

- the network thread is the only one that touches the MQTT session (watershed/mqtt). paho's
  thread safety is limited (publishing from several threads can deadlock, paho #354/#358), so
  this thread runs ``session.loop()`` itself and, between rounds, hands the round's messages to
  the worker and performs the actions the worker handed back (acks, sent together, and
  dead-letter publishes). Its session reads ahead and batches acks (mqtt/paho_session.py).
- the worker (pipeline.WritePipeline) decodes, batches and writes, on ``influx.parallel_writes``
  write threads. An HTTP write can block for seconds; in the network thread it would stall
  keepalives and get us disconnected.

Acks never cross MQTT connections: after a reconnect the broker resends every unacked message
(persistent session) with its packet id, and may reuse an id once it is acked, so an ack for a
message from an earlier connection could acknowledge a different, unwritten message. Such acks
are dropped; the resent copy is written again (same identity, so the same point) and acked.
"""

from __future__ import annotations

import logging
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .. import logs
from ..backoff import Backoff
from ..metrics_http import serve
from ..notify import SystemdNotifier, watchdog_interval_s
from ..contracts.mqtt import QOS, Topics
from ..mqtt import Handlers, Session, Will
from ..mqtt.paho_session import PahoSession
from ..mqtt.session import SessionFactory
from .batches import Ack, Action, Delivery, PublishConfirm, PublishDeadLetter
from .config import ConfigError, IngestConfig, load_config
from .deadletter import DeadLetterFile
from .messages import Converter
from .metrics import (Unacked, WriteWindow, encode_status, log_line, prometheus_families,
                      status_document)
from .owners import Owners
from .batch_write import WRITE_RETRY
from .pipeline import COUNTERS, WritePipeline
from .ratings_setup import load_station_ratings
from .stats import Counters
from .writer import Writer, make_writer

log = logging.getLogger(__name__)

KEEPALIVE_S = 30
_LOOP_TIMEOUT_S = 0.02  # how long an ack may wait for the network thread's next round
_READ_BURST = 100  # messages read in one round at most, so that acks still go out between
_RECONNECT = Backoff(initial_s=0.5, max_s=30.0, jitter=0.5)
_STOP_TIMEOUT_EXTRA_S = 5.0
_IDLE_STATUS_DELAY_S = 0.5  # after settling everything, the status goes out this soon


class Ingest:
    def __init__(self, config: IngestConfig, *, writer: Writer | None = None,
                 backoff: Backoff = WRITE_RETRY, session: SessionFactory = PahoSession) -> None:
        self.config = config
        self._session_factory = session
        self._topics = Topics(config.mqtt.prefix)
        # $share: instances with the same group split the stream, each message to one of them.
        self.subscription = f"$share/{config.ingest.group}/{self._topics.all_readings()}"
        self.deadletter_topic = self._topics.deadletter(config.ingest.id)
        self._deadletters = DeadLetterFile(config.ingest.id, config.ingest.deadletter_file)
        self.owners = Owners(config.ingest.owners_path, config.ingest.id)
        # A writer given (tests) is the only one: one write thread.
        self._writers: list[Writer] = [writer] if writer is not None else []
        self._backoff = backoff
        self._inbox: queue.Queue[list[Delivery]] = queue.Queue()
        self._arrivals: list[Delivery] = []  # network thread only: this round's, for the inbox
        self._actions: queue.Queue[Action] = queue.Queue()
        self._counters = Counters("received", "acks_sent", "acks_dropped", "connects",
                                  *COUNTERS)
        self._stopping = threading.Event()  # worker: finish up
        self._network_stop = threading.Event()  # network thread: last acks, then disconnect
        self._session = 0  # network thread only: bumped on every accepted connection
        self._connected = False  # network thread only
        self._subscribed = False  # network thread only: the broker confirmed our subscription
        self._failed_connects = 0  # network thread only
        self._client: Session | None = None
        self._pipeline: WritePipeline | None = None
        self._threads: list[threading.Thread] = []
        self.status_topic = self._topics.ingest_status(config.ingest.id)
        self._writes = WriteWindow()
        self._unacked = Unacked()  # network thread only
        self._published_busy = False  # network thread only: the last status showed unacked ones
        self._since = int(time.time())
        self._next_status = 0.0  # network thread only: monotonic time of the next status
        self._next_log = time.monotonic() + config.ingest.log_interval_s

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start both threads and return; connecting (and reconnecting) is the network thread's
        job, so the service starts even while the broker is down. Raises ConfigError if the
        dead-letter file cannot be written. An Ingest runs once: after stop(), make a new one."""
        if self._threads or self._stopping.is_set():
            raise RuntimeError("an Ingest starts once")
        try:
            self._deadletters.check_writable()
        except OSError as e:
            raise ConfigError(f"ingest.deadletter_file: cannot write {self._deadletters.path}: "
                              f"{e.strerror}") from e
        try:
            self.owners.load()
        except OSError as e:
            raise ConfigError(f"ingest.owners_file: cannot use {self.owners.path}: "
                              f"{e.strerror}") from e
        converter = Converter(self.config, load_station_ratings(self.config),
                              owners=self.owners)
        if not self._writers:
            self._writers = [make_writer(self.config.influx)
                             for _ in range(self.config.influx.parallel_writes)]
        self._pipeline = WritePipeline(
            self._writers, self._deadletters, self._topics, self._actions.put, self._counters,
            batch_size=self.config.influx.batch_size,
            flush_interval_s=self.config.influx.flush_interval_s, backoff=self._backoff,
            convert=converter.convert, observe_write=self._writes.observe, settled=self._wake,
            ingest_id=self.config.ingest.id)
        self._client = self._make_client()
        self._threads = [
            threading.Thread(target=self._pipeline.run, args=(self._inbox, self._stopping),
                             name=f"ingest-{self.config.ingest.id}-writer", daemon=True),
            threading.Thread(target=self._network_loop,
                             name=f"ingest-{self.config.ingest.id}-mqtt", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Write what has arrived (one attempt), acknowledge it, disconnect. Whatever is not
        written stays unacknowledged in the broker's session for redelivery."""
        if not self._threads:
            return
        worker, network = self._threads
        self._stopping.set()
        worker.join(self.config.influx.timeout_s + _STOP_TIMEOUT_EXTRA_S)
        self._network_stop.set()
        network.join(KEEPALIVE_S)
        for writer in self._writers:
            writer.close()
        self._threads = []

    def running(self) -> bool:
        """Both threads alive (run() exits non-zero if one dies)."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def stats(self) -> dict[str, Any]:
        values: dict[str, Any] = self._counters.snapshot()
        taken = self._pipeline.taken if self._pipeline else 0
        values["queued"] = int(values["received"] or 0) - taken  # not yet taken by the worker
        values["pending"] = self._pipeline.pending if self._pipeline else 0  # in the batch
        values["readings_not_owned"] = self.owners.refused
        values["connected"] = self._connected
        values["subscribed"] = self._subscribed
        return values

    def status(self, state: str = "online") -> dict[str, Any]:
        """The status document (metrics.status_document) as of now."""
        return status_document(self.config.ingest.id, state, self._since, self.stats(),
                               self._writes.summary(), len(self._unacked),
                               self._unacked.oldest_age_s())

    # -- network thread ------------------------------------------------------------------------

    def _make_client(self) -> Session:
        c = self.config
        endpoint = c.mqtt.endpoint(
            c.ingest.id, keepalive_s=KEEPALIVE_S, clean_session=False,
            # A crash leaves "offline" as the retained status, not the last numbers posing as
            # live.
            will=Will(self.status_topic, encode_status(self.status("offline")), QOS, True),
            manual_ack=True, read_ahead=True)
        return self._session_factory(endpoint, Handlers(
            on_connect=self._on_connect, on_disconnect=self._on_disconnect,
            on_subscribe=self._on_subscribe, on_message=self._on_message))

    def _network_loop(self) -> None:
        client = self._client
        assert client is not None
        while not self._network_stop.is_set():
            if not client.is_open() and not self._reconnect(client):
                continue
            # Then the messages already waiting, up to _READ_BURST (acks go out between).
            client.loop(_LOOP_TIMEOUT_S, read_burst=_READ_BURST)
            if self._arrivals:
                self._counters.add("received", len(self._arrivals))  # before the worker sees them
                self._inbox.put(self._arrivals)
                self._arrivals = []
            self._perform_actions(client)
            self._report(client)
        self._perform_actions(client)  # the worker's last acks, before we go
        if client.is_open():
            if self._connected:
                client.publish(self.status_topic, encode_status(self.status("offline")),
                               qos=QOS, retain=True)
            client.disconnect()
            for _ in range(50):  # until DISCONNECT is out and the socket is closed
                if client.loop(_LOOP_TIMEOUT_S) is not None or not client.is_open():
                    break

    def _wake(self) -> None:
        """Called by the worker once it has emitted a batch's acks: cut short the network
        thread's wait in ``session.loop()`` so they go out now, not after _LOOP_TIMEOUT_S."""
        if self._client is not None:
            self._client.wake()

    def _reconnect(self, client: Session) -> bool:
        """Open a connection (CONNACK comes later, in on_connect); backs off after failures,
        including connections the broker closed without accepting."""
        if self._failed_connects:
            self._network_stop.wait(_RECONNECT.delay(self._failed_connects - 1))
            if self._network_stop.is_set():
                return False
        self._failed_connects += 1  # until on_connect says otherwise
        try:
            client.connect()
            return True
        except OSError as e:
            log.warning("cannot reach MQTT broker %s:%d: %s", self.config.mqtt.host,
                        self.config.mqtt.port, e)
            return False

    def _perform_actions(self, client: Session) -> None:
        acks: list[int] = []  # QoS 1 PUBACKs due, sent together (a send() each would cost)
        sent = dropped = 0
        while True:
            try:
                action = self._actions.get_nowait()
            except queue.Empty:
                break
            if isinstance(action, Ack):
                self._unacked.settle(action.session, action.mid)
                if self._connected and action.session == self._session:
                    if action.qos == 1:
                        acks.append(action.mid)
                    else:
                        client.ack([action.mid], action.qos)
                    sent += 1
                else:
                    dropped += 1  # resent by the broker, see module doc
            elif isinstance(action, PublishDeadLetter):
                self._send_acks(client, acks)  # earlier messages' acks before this record
                client.publish(self.deadletter_topic, action.record, qos=QOS)
            elif isinstance(action, PublishConfirm):
                # Before the acks of the messages it confirms (the worker emits it first).
                self._send_acks(client, acks)
                client.publish(action.topic, action.payload, qos=QOS)
        self._send_acks(client, acks)
        if sent:
            self._counters.add("acks_sent", sent)
        if dropped:
            self._counters.add("acks_dropped", dropped)

    @staticmethod
    def _send_acks(client: Session, acks: list[int]) -> None:
        client.ack(acks)
        acks.clear()

    def _report(self, client: Session) -> None:
        """The periodic retained status message and log line."""
        now = time.monotonic()
        if self._published_busy and not self._unacked:
            # Settled everything since a status said otherwise: gateways take this as evidence
            # that what they published before it and nobody confirmed was lost
            # (gateway/redelivery.py), so say it soon; at most once an interval (the statuses
            # go to every gateway, over metered uplinks).
            self._next_status = min(self._next_status, now + _IDLE_STATUS_DELAY_S)
        # Only once subscribed: a status says what this ingest has settled of what the broker
        # gives its subscription, which means nothing before the SUBACK. Decided before making
        # the document: a persistent session's backlog arrives before the SUBACK, and the
        # document would otherwise be made, and dropped, once per message until then.
        publish = now >= self._next_status and self._connected and self._subscribed
        if not publish and now < self._next_log:
            return
        document = self.status()
        if publish:
            client.publish(self.status_topic, encode_status(document), QOS, retain=True)
            self._next_status = now + self.config.ingest.status_interval_s
            self._published_busy = document["messages"]["unacked"] > 0
        if now >= self._next_log:
            log.info("%s", log_line(document))
            self._next_log = now + self.config.ingest.log_interval_s

    def _on_connect(self, session_present: bool, refused: str | None) -> None:
        if refused is not None:
            log.error("MQTT broker refused the connection: %s", refused)
            return
        self._session += 1
        self._unacked.forget_sessions_before(self._session)
        self._connected = True
        self._failed_connects = 0
        self._counters.add("connects")
        log.info("connected to MQTT %s:%d (session present: %s)", self.config.mqtt.host,
                 self.config.mqtt.port, session_present)
        assert self._client is not None
        self._client.subscribe(self.subscription, QOS)

    def _on_subscribe(self, refused: list[str]) -> None:
        if refused:
            log.error("MQTT broker refused the subscription %s: %s", self.subscription, refused)
        self._subscribed = not refused
        if self._subscribed:
            self._next_status = 0.0  # at once: replace the "offline" a last will may have left

    def _on_disconnect(self, reason: str) -> None:
        if self._connected and not self._network_stop.is_set():
            log.warning("disconnected from MQTT: %s", reason)
        self._connected = False
        self._subscribed = False

    def _on_message(self, topic: str, payload: bytes, qos: int, retain: bool, mid: int) -> None:
        # A topic that is not UTF-8 (mqtt.NOT_UTF8_TOPIC) is rejected downstream like any other
        # bad message.
        self._unacked.add(self._session, mid)
        self._arrivals.append(Delivery(mid, qos, self._session, topic, payload))


def run(config_path: str | Path) -> int:
    """Run until SIGTERM or SIGINT; the exit status (2: bad config, 1: a thread died).

    Logs in logfmt on stdout like the gateway (journald keeps them). Under systemd
    (``Type=notify``) it says READY=1 once started and feeds the watchdog while both of its
    threads live; metrics on 127.0.0.1:``[ingest] metrics_port`` if set."""
    logs.configure()
    try:
        ingest = Ingest(load_config(config_path))
        ingest.start()
    except ConfigError as e:
        print(f"watershed ingest: {e}", file=sys.stderr)  # journald keeps stderr too
        return 2
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    notifier = SystemdNotifier()
    watchdog_s = watchdog_interval_s()
    metrics = None
    port = ingest.config.ingest.metrics_port
    if port:
        try:
            metrics = serve(port, "watershed_ingest",
                            lambda: prometheus_families(ingest.status()))
        except OSError as e:
            log.error("no metrics: cannot listen on 127.0.0.1:%d (%s)", port, e)
    notifier.notify("READY=1", f"STATUS=ingest {ingest.config.ingest.id} running")
    try:
        while not stop.wait(min(watchdog_s or 1.0, 1.0)):
            if not ingest.running():
                log.error("an ingest thread died; exiting")
                return 1
            notifier.notify("WATCHDOG=1")
        return 0
    finally:
        notifier.notify("STOPPING=1")
        if metrics is not None:
            metrics.shutdown()
            metrics.server_close()
        ingest.stop()
        notifier.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
