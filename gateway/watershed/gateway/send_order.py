"""What the forwarder publishes next, and what it has in flight: decisions only, no I/O.

Within ``max_inflight`` messages awaiting the broker's PUBACK, every turn:
1. flood alerts (the store's ``alerts``), ahead of everything;
2. live readings: stored since the connection came up, in small messages, at once;
3. the backlog: everything older, streamed from the store by an id cursor in large messages,
   never taking the slots kept for live readings (``live_reserve``). Memory is bounded by the
   in-flight window, however many readings wait.

The forwarder asks for a page (``live_page``, ``backlog_page``, ``alert_page``), reads those
rows from the store, hands them back (``took_*``), publishes the messages ``messages`` makes of
them and says which message id carries what (``sent``, ``sent_alert``); a PUBACK is matched back
with ``acknowledged``. A row already in flight (published before a reconnect; the session
resends it) is never put in a second message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from watershed.contracts.mqtt import ReadingsMessage

from .store import StoredReading

Key = tuple[str, int]  # (station, seq)


class Page(NamedTuple):
    """Unsent rows to read: at most ``limit``, ids above ``after_id`` (and at most ``up_to_id``)."""

    limit: int
    after_id: int
    up_to_id: int | None = None


class Acknowledged(NamedTuple):
    readings: list[int]  # store ids of the readings the message carried (empty for an alert)
    alert: int | None  # the alert's id, if the message was an alert


def live_reserve(max_inflight: int) -> int:
    """In-flight slots the backlog leaves free, so a live reading never waits behind it."""
    return max_inflight // 4 if max_inflight >= 4 else min(1, max_inflight - 1)


def grouped(rows: Iterable[StoredReading], gateway: str, max_per_message: int
            ) -> list[tuple[ReadingsMessage, list[StoredReading]]]:
    """Readings messages of up to ``max_per_message`` readings of one station and basin, in
    order of the first reading of each, with the rows each carries."""
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


def group_messages(rows: Iterable[StoredReading], gateway: str, max_per_message: int
                   ) -> list[tuple[ReadingsMessage, list[Key]]]:
    """``grouped``, with the store keys each message carries."""
    return [(message, [r.key for r in chunk])
            for message, chunk in grouped(rows, gateway, max_per_message)]


class SendOrder:
    def __init__(self, gateway: str, max_inflight: int, live_per_message: int,
                 backlog_per_message: int) -> None:
        self.gateway = gateway
        self.max_inflight = max_inflight
        self.live_per_message = live_per_message
        self.backlog_per_message = backlog_per_message
        self._live_from = 0  # rows above this id arrived while connected: live
        self._live_cursor = 0  # highest live id taken
        self._backlog_cursor = 0  # highest backlog id taken
        self.backlog_done = False
        self._alert_cursor = 0
        self._inflight: dict[int, list[int]] = {}  # message id -> store ids it carries
        self._inflight_ids: set[int] = set()
        self._inflight_alerts: dict[int, int] = {}  # message id -> alert id

    @property
    def inflight(self) -> int:
        """Readings messages awaiting the broker's PUBACK."""
        return len(self._inflight)

    @property
    def idle(self) -> bool:
        """Nothing awaits a PUBACK."""
        return not self._inflight and not self._inflight_alerts

    def restart(self, newest_id: int) -> None:
        """What is stored now (ids up to ``newest_id``) is backlog; everything after is live."""
        self._live_from = self._live_cursor = newest_id
        self._backlog_cursor = 0
        self.backlog_done = False
        self._alert_cursor = 0

    def room(self) -> int:
        return self.max_inflight - len(self._inflight) - len(self._inflight_alerts)

    # --- pages to read ----------------------------------------------------------------

    def alert_page(self) -> Page | None:
        room = self.room()
        return Page(room, self._alert_cursor) if room > 0 else None

    def live_page(self) -> Page | None:
        room = self.room()
        return Page(room * self.live_per_message, self._live_cursor) if room > 0 else None

    def backlog_page(self) -> Page | None:
        room = self.room() - live_reserve(self.max_inflight)
        if room <= 0 or self.backlog_done:
            return None
        return Page(room * self.backlog_per_message, self._backlog_cursor, self._live_from)

    # --- what was read ----------------------------------------------------------------

    def took_alerts(self, alerts: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
        """The ``(id, station, payload)`` alerts read to publish: those not in flight."""
        if alerts:
            self._alert_cursor = alerts[-1][0]
        in_flight = set(self._inflight_alerts.values())
        return [a for a in alerts if a[0] not in in_flight]

    def took_live(self, rows: list[StoredReading]
                  ) -> list[tuple[ReadingsMessage, list[StoredReading]]]:
        """The messages to publish of the live ``rows`` read for ``live_page``."""
        if rows:
            self._live_cursor = rows[-1].id
        return self._messages(rows, self.live_per_message)

    def took_backlog(self, rows: list[StoredReading]
                     ) -> list[tuple[ReadingsMessage, list[StoredReading]]]:
        """The messages to publish of the backlog ``rows`` read for ``backlog_page``; none
        read means the backlog is drained (until the next ``restart``)."""
        if not rows:
            self.backlog_done = True
            return []
        self._backlog_cursor = rows[-1].id
        return self._messages(rows, self.backlog_per_message)

    def _messages(self, rows: list[StoredReading], per_message: int
                  ) -> list[tuple[ReadingsMessage, list[StoredReading]]]:
        rows = [row for row in rows if row.id not in self._inflight_ids]
        return grouped(rows, self.gateway, per_message)

    # --- in flight --------------------------------------------------------------------

    def sent(self, mid: int, rows: list[StoredReading]) -> None:
        ids = [r.id for r in rows]
        self._inflight[mid] = ids
        self._inflight_ids.update(ids)

    def sent_alert(self, mid: int, alert_id: int) -> None:
        self._inflight_alerts[mid] = alert_id

    def acknowledged(self, mid: int) -> Acknowledged | None:
        """What the message ``mid`` carried, now acknowledged; None if it is none of ours."""
        alert = self._inflight_alerts.pop(mid, None)
        if alert is not None:
            return Acknowledged([], alert)
        ids = self._inflight.pop(mid, None)
        if ids is None:
            return None
        self._inflight_ids.difference_update(ids)
        return Acknowledged(ids, None)
