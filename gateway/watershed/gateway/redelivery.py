"""When to publish again what the broker acknowledged but no ingest has confirmed (no I/O).

A broker's PUBACK proves only that the broker took the message: mosquitto drops a message no
subscription matches (after a restart it forgets the ingests' ``$share`` subscriptions until they
subscribe again), and a crashed broker forgets what it took since its last save. So a reading
stays in the gateway's "must deliver" set until an ingest confirms it (contracts/confirm.py),
and is published again once it is *overdue*, which this object decides from two kinds of
evidence, never from time alone (an ingest that is slow, or an InfluxDB that is down, holds
messages for as long as it takes, and publishing them again then would only pile up copies):

- **overtaken**: an ingest confirmed a reading the broker acknowledged ``grace_s`` or more after
  this one. The broker hands a subscriber its messages in order, so this one was skipped.
- **idle**: every ingest that says it is online has published, since, a status with nothing
  unacknowledged (``messages.unacked == 0``): each has settled everything the broker gave it,
  so what was acknowledged ``grace_s`` before the latest such status of the slowest of them
  never reached any. Only live statuses count, not a retained one replayed on subscribing,
  which may be hours old.

Times are the gateway's clock (the store's ``acked_at``), taken when the evidence arrives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

DEFAULT_GRACE_S = 10.0


@dataclass
class _Ingest:
    online: bool = False
    idle_at: float | None = None  # when a live status saying "nothing unacknowledged" arrived


class Redelivery:
    def __init__(self, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.grace_s = grace_s
        self._ingests: dict[str, _Ingest] = {}
        self._overtaken_at: float | None = None  # newest acked_at among confirmed readings
        self._applied: float | None = None  # the last threshold handed out

    def on_status(self, ingest_id: str, payload: bytes, *, retained: bool, now: float) -> None:
        """An ingest's status message (``<prefix>/v1/ingest/<id>/status``); empty: deleted."""
        if not payload:
            self._ingests.pop(ingest_id, None)
            return
        try:
            doc = json.loads(payload)
            online = doc.get("state") == "online"
            unacked = doc.get("messages", {}).get("unacked")
        except (ValueError, AttributeError):
            online, unacked = False, None  # not an ingest's document: it tells us nothing
        ingest = self._ingests.setdefault(ingest_id, _Ingest())
        ingest.online = online
        if online and not retained and unacked == 0:
            ingest.idle_at = now

    def on_confirmed(self, newest_acked_at: float | None) -> None:
        """Readings acknowledged by the broker at up to ``newest_acked_at`` were confirmed."""
        if newest_acked_at is not None and (self._overtaken_at is None
                                            or newest_acked_at > self._overtaken_at):
            self._overtaken_at = newest_acked_at

    def resend_before(self) -> float | None:
        """A new threshold: readings acknowledged by the broker before it and still unconfirmed
        are overdue. None when the evidence has not moved since the last threshold."""
        candidates = []
        if self._overtaken_at is not None:
            candidates.append(self._overtaken_at - self.grace_s)
        online = [i for i in self._ingests.values() if i.online]
        if online and all(i.idle_at is not None for i in online):
            candidates.append(min(i.idle_at for i in online if i.idle_at is not None)
                              - self.grace_s)
        if not candidates:
            return None
        threshold = max(candidates)
        if self._applied is not None and threshold <= self._applied:
            return None
        self._applied = threshold
        return threshold

    def ingests(self) -> dict[str, str]:
        """Ingest id -> "online"/"offline", as their statuses last said (for health)."""
        return {name: "online" if i.online else "offline" for name, i in self._ingests.items()}
