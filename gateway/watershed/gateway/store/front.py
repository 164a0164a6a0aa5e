"""``Store``: the gateway's durable store as its callers know it, a thin front over the package.

One SQLite file in WAL mode with ``synchronous=FULL``: when ``add`` returns, the readings are on
disk and survive a power cut, which is what lets the gateway ACK them to the station (the station
then deletes them; the store is the only copy left). Every thread goes through one connection
under one lock (database.py). The work is done by one object per concern:

- readings.py: readings in, duplicates and conflicts, the runs received, what to ACK;
  group_commit.py: readings several links store at once go in one durable commit (SD wear);
- delivery.py: delivery states (unsent, published, confirmed), the forwarder's cursor, pruning;
- ledger.py: holes, and the loss ledger (a loss is never silent: health publishes it);
- quota.py: the quota on the store's files, and shedding by priority to keep within it;
- facts.py: what each station last said (the delayed-write cache that spares the SD card);
- alerts.py: the alert outbox, held in memory while the store is full;
- identity.py: bus bindings and the quarantine;
- counters.py: totals that survive restarts; schema.py: the tables and their migrations.

A full disk (SQLite's "database or disk is full", ENOSPC) or a full quota makes every write
raise StoreFull and puts ``space`` (space.py) in its full state: one log line, an alert, no
traceback per failure. Alerts raised meanwhile are kept in memory and written once readings are
stored again. Station facts that cannot be written stay pending.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from watershed.contracts.mqtt import MessageReading
from watershed.contracts.wire import Hello, Reading, Status

from ..runs import Run
from ..space import StoreSpace
from . import counters, schema
from .alerts import AlertOutbox
from .database import Database, StoreFull
from .delivery import Confirmed, Delivery, StoredReading
from .facts import FACTS_INTERVAL_S, PushedConfig, StationFacts, StationInfo
from .group_commit import GROUP_WINDOW_S
from .identity import Bindings, Quarantine, QuarantineEntry
from .ledger import Ledger
from .quota import DEFAULT_PROTECTED_EVENTS, Quota, files_bytes
from .readings import AckRanges, Added, ReadingsIn

log = logging.getLogger(__name__)


class Store:
    """The durable reading store; thread-safe. See the module docstring."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time, *,
                 quota_bytes: int | None = None,
                 protected_events: int = DEFAULT_PROTECTED_EVENTS,
                 facts_interval_s: float = FACTS_INTERVAL_S,
                 group_window_s: float = GROUP_WINDOW_S) -> None:
        self.path = str(path)
        self.space = StoreSpace(self.path, clock)
        self.database = Database(self.path, self.space)
        self._quota = Quota(self.database, quota_bytes, protected_events)
        schema.migrate(self.database, clock)
        self._facts = StationFacts(self.database, clock, facts_interval_s)
        self._alerts = AlertOutbox(self.database, clock)
        self._readings = ReadingsIn(self.database, self._quota, self._facts, clock,
                                   group_window_s)
        self._delivery = Delivery(self.database, clock)
        self._ledger = Ledger(self.database, clock)
        self._bindings = Bindings(self.database, clock)
        self._quarantine = Quarantine(self.database, clock)

    @property
    def quota_bytes(self) -> int | None:
        return self._quota.quota_bytes

    @property
    def protected_events(self) -> int:
        return self._quota.protected_events

    def close(self) -> None:
        with self.database.lock:
            try:
                self._delivery.flush()
            except StoreFull:
                log.warning("store full at close: %d broker acknowledgements are not written;"
                            " those readings go out once more", self._delivery.acks_pending)
            try:
                self._facts.write()
            except StoreFull:
                log.warning("store full at close: the last facts of %d station(s) (last seen,"
                            " battery) are not written; their next poll says them again",
                            self._facts.pending_stations)
            finally:
                self.database.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- readings in, and what to ACK --------------------------------------------------

    def add(self, station: str, basin: str, readings: Sequence[MessageReading]) -> Added:
        """Store one station's readings in one transaction, durable on return (readings.py).

        Raises StoreFull (storing nothing) when the disk is full, or the quota leaves no room
        even after shedding."""
        added = self._readings.add(station, basin, readings)
        if added.new:
            self._writable_again()
        return added

    def add_many(self, batches: Sequence[tuple[str, str, Sequence[MessageReading]]]
                 ) -> list[Added | Exception]:
        """Several stations' readings (station, basin, readings), durable on return: one
        transaction if all go, else each alone; per batch its Added or what refused it
        (StoreFull: nothing of it stored). The SD card's sake: one commit, not one each."""
        outcomes = self._readings.add_many(batches)
        if any(isinstance(o, Added) and o.new for o in outcomes):
            self._writable_again()
        return outcomes

    @property
    def reading_commits(self) -> int:
        """Transactions that stored readings since the store opened (a group counts once)."""
        return self._readings.group.transactions

    def _writable_again(self) -> None:
        """Readings were stored: if the store was full, it is not; what waited in memory is
        written, then the listeners hear of it."""
        change = self.space.note_writable()
        if change is None:
            return
        try:
            self._alerts.write_held()
        except StoreFull:
            pass  # noted; kept in memory, written after the next stored readings
        self.space.announce(change)

    def ack_ranges(self, station: str) -> AckRanges:
        return self._readings.ack_ranges(station)

    def ack_floor(self, station: str) -> int | None:
        return self._readings.ack_floor(station)

    def highest_seq(self, station: str) -> int | None:
        return self._readings.highest_seq(station)

    def received_seqs(self, station: str, seqs: Iterable[int]) -> set[int]:
        return self._readings.received_seqs(station, seqs)

    def reused_seqs(self, station: str, readings: Iterable[MessageReading]) -> set[int]:
        return self._readings.reused_seqs(station, readings)

    def files_bytes(self) -> int:
        """What the store's files take on disk now: database, WAL, journal, WAL index."""
        return files_bytes(self.path)

    def used_bytes(self) -> int:
        """The database's pages in use (free pages are reused, not returned to the disk): what
        counts against the quota's ceiling."""
        return self._quota.used_bytes()

    # --- holes and the loss ledger (ledger.py) -----------------------------------------

    def holes(self, station: str, below: int | None = None) -> list[Run]:
        return self._ledger.holes(station, below)

    def settle_lost(self, station: str, oldest_held: int) -> int:
        return self._ledger.settle_lost(station, oldest_held)

    def loss_ledger(self) -> dict[str, dict[str, int]]:
        return self._ledger.loss_ledger()

    def lost_runs(self, station: str) -> list[Run]:
        return self._ledger.lost_runs(station)

    # --- readings out (delivery.py) ----------------------------------------------------

    def unsent(self, limit: int, after_id: int = 0, station: str | None = None,
               up_to_id: int | None = None) -> list[StoredReading]:
        return self._delivery.unsent(limit, after_id, station, up_to_id)

    def max_id(self) -> int:
        return self._delivery.max_id()

    def mark_published(self, ids: Iterable[int]) -> int:
        return self._delivery.mark_published(ids)

    def confirm(self, written: Mapping[str, Sequence[Run]],
                rejected: Mapping[str, Sequence[tuple[int, int, str]]] = MappingProxyType({})
                ) -> Confirmed:
        return self._delivery.confirm(written, rejected)

    def resend_unconfirmed(self, acked_before: float) -> int:
        return self._delivery.resend_unconfirmed(acked_before)

    def prune_confirmed(self, keep: int, batch: int = 10_000) -> int:
        return self._delivery.prune_confirmed(keep, batch)

    def oldest_unsent_received_at(self) -> float | None:
        return self._delivery.oldest_unsent_received_at()

    def oldest_unconfirmed_received_at(self) -> float | None:
        return self._delivery.oldest_unconfirmed_received_at()

    # --- stations (facts.py) -----------------------------------------------------------

    def record_hello(self, hello: Hello) -> StationInfo | None:
        return self._facts.record_hello(hello)

    def record_next_seq(self, station: str, next_seq: int) -> None:
        self._facts.record_next_seq(station, next_seq)

    def record_status(self, station: str, status: Status) -> None:
        self._facts.record_status(station, status)

    def record_pushed_config(self, station: str, config: str) -> None:
        self._facts.record_pushed_config(station, config)

    def pushed_config(self, station: str) -> PushedConfig | None:
        return self._facts.pushed_config(station)

    def station(self, station: str) -> StationInfo | None:
        return self._facts.station(station)

    def stations(self) -> list[StationInfo]:
        return self._facts.stations()

    # --- alerts (alerts.py) ------------------------------------------------------------

    def add_alert(self, station: str, payload: str) -> int:
        return self._alerts.add(station, payload)

    def unsent_alerts(self, limit: int, after_id: int = 0) -> list[tuple[int, str, str]]:
        return self._alerts.unsent(limit, after_id)

    def mark_alert_sent(self, alert_id: int) -> None:
        self._alerts.mark_sent(alert_id)

    # --- bus identity and quarantine (identity.py) -------------------------------------

    def bindings(self) -> dict[tuple[str, int], str]:
        return self._bindings.all()

    def bind(self, link: str, address: int, station: str) -> bool:
        return self._bindings.bind(link, address, station)

    def unbind(self, link: str, address: int) -> None:
        self._bindings.unbind(link, address)

    def quarantine_case(self, kind: str, link: str, address: int, bound: str | None,
                        claimed: str) -> tuple[int, bool]:
        return self._quarantine.case(kind, link, address, bound, claimed)

    def quarantine_add(self, entry: int, readings: Sequence[Reading]) -> int:
        return self._quarantine.add(entry, readings)

    def quarantine_entries(self, entry: int | None = None, state: str | None = "open"
                           ) -> list[QuarantineEntry]:
        return self._quarantine.entries(entry, state)

    def quarantined_readings(self, entry: int) -> list[Reading]:
        return self._quarantine.readings(entry)

    def settle_quarantine(self, entry: int, state: str, to: str | None = None,
                          lost_station: str | None = None, lost: int = 0) -> bool:
        return self._quarantine.settle(entry, state, to, lost_station, lost)

    # --- counts ------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Totals since the store was created, and what is waiting now."""
        with self.database.reading() as db:
            out = counters.counts(db)
            out["alerts_unsent"] += self._alerts.unsent_in_memory()
            # Acknowledged by the broker, noted but not written yet (delivery.py).
            noted = self._delivery.acks_pending
            out["unsent"] -= noted
            out["unconfirmed"] += noted
            out["readings_sent"] += noted
        return out
