"""What the broker brings the gateway, on the forwarder's thread: an ingest's end-to-end
confirmation (recorded in the store: its readings leave the must-deliver set), an ingest's
status (redelivery.py's evidence of loss), and a remote operation, taken only from the gateway's
own command topic."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from watershed.contracts.confirm import decode_confirmation
from watershed.contracts.mqtt import PayloadError, Topics

from .redelivery import Redelivery
from .store import Store

log = logging.getLogger(__name__)

BAD_CONFIRM_LOG_INTERVAL_S = 600.0  # a malformed confirmation is logged at most this often

# Records a delivery state in the store: the result, or None if the store refused
# (forwarder.Forwarder._write_state).
StateWriter = Callable[[Callable[[], Any], str], Any]


class Incoming:
    """Routes each message by its topic; counts into the forwarder's ``stats``."""

    def __init__(self, gateway_id: str, topics: Topics, store: Store, redelivery: Redelivery,
                 stats: dict[str, int], write_state: StateWriter, *,
                 clock: Callable[[], float], on_command: Callable[[bytes], None] | None) -> None:
        self.confirm_topic = topics.confirm(gateway_id)
        self.ingest_filter = topics.ingest_status("+")
        self.command_topic = topics.command(gateway_id)
        self._store = store
        self._redelivery = redelivery
        self._stats = stats
        self._write_state = write_state
        self._clock = clock
        self._on_command = on_command
        self._next_bad_confirm_log = 0.0
        self.last_confirmation_at: float | None = None  # the alarms' view of the ingests

    def on_message(self, topic: str, payload: bytes, qos: int, retain: bool, mid: int) -> None:
        if topic == self.confirm_topic:
            self._on_confirmation(payload)
            return
        ingest_id = self._ingest_id(topic)
        if ingest_id is not None:
            self._redelivery.on_status(ingest_id, payload, retained=retain, now=self._clock())
            return
        # Only the gateway's own command topic: a retained or stray message elsewhere (a
        # broker ACL mistake, a wildcard) must never drive its stations.
        if topic != self.command_topic or retain:
            self._stats["commands_rejected"] += 1
            log.warning("forwarder: ignored a message on %s (retained: %s); commands are taken"
                        " only from %s", topic, retain, self.command_topic)
            return
        self._stats["commands_received"] += 1
        if self._on_command is not None:
            self._on_command(payload)

    def _ingest_id(self, topic: str) -> str | None:
        """The ingest id of a topic matching ``<prefix>/v1/ingest/+/status``, else None."""
        head, _, tail = self.ingest_filter.partition("+")
        if topic.startswith(head) and topic.endswith(tail):
            ident = topic[len(head):len(topic) - len(tail)]
            if ident and "/" not in ident:
                return ident
        return None

    def _on_confirmation(self, payload: bytes) -> None:
        try:
            confirmation = decode_confirmation(payload)
        except PayloadError as e:
            self._stats["confirmations_invalid"] += 1
            if time.monotonic() >= self._next_bad_confirm_log:
                self._next_bad_confirm_log = time.monotonic() + BAD_CONFIRM_LOG_INTERVAL_S
                log.warning("forwarder: ignored a malformed confirmation on %s: %s (%d so far)",
                            self.confirm_topic, e, self._stats["confirmations_invalid"])
            return
        done = self._write_state(lambda: self._store.confirm(confirmation.written,
                                                             confirmation.rejected),
                                 "record a confirmation")
        if done is None:
            return  # not recorded: those readings are confirmed again after a resend
        self._stats["confirmations"] += 1
        self.last_confirmation_at = self._clock()
        self._stats["readings_confirmed"] += done.written
        self._stats["readings_rejected"] += done.rejected
        self._redelivery.on_confirmed(done.newest_acked_at)
