"""Who answers at each bus address: one station id per address per link, and one address per id.

A DATA frame names only its bus address; the station id comes from that station's HELLO. So the
gateway keeps a binding per (link, address):
- from the config's station registry where it says which station is there: a registered
  station's address on the only link that polls that address;
- else learned from the first HELLO heard there (where several links poll an address, the
  stations registered at it are the only ones it may learn), kept durably in the store.

A HELLO that does not fit is a ``Mismatch``, and what follows it is quarantined (quarantine.py):
- ``address_taken``: the address is bound to another id (a forged or mis-set HELLO, a swapped
  board);
- ``id_elsewhere``: the id is bound at another address or on another link (two boards with one
  id, a mis-set DIP switch).
The poller adds ``shared_address`` (two stations answer one POLL) and ``seq_reused`` (a seq
stored already with other content).

A binding changes only by the config: register the station at the address (SIGHUP) and the
registry wins over what was learned.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from .config import LinkConfig, StationConfig
from .store import Store

log = logging.getLogger(__name__)

ADDRESS_TAKEN = "address_taken"
ID_ELSEWHERE = "id_elsewhere"
SHARED_ADDRESS = "shared_address"
SEQ_REUSED = "seq_reused"
CASES = (ADDRESS_TAKEN, ID_ELSEWHERE, SHARED_ADDRESS, SEQ_REUSED)


@dataclass(frozen=True)
class Mismatch:
    """Why frames at an address cannot be taken as the station they claim to be."""

    kind: str  # one of CASES
    bound: str | None  # the id the address belongs to (None: nobody's yet)
    claimed: str  # the id the frames claimed (their HELLO's; the bound id if they named none)
    detail: str  # one line for the log and the alert

    @property
    def key(self) -> tuple[str, str | None, str]:
        return self.kind, self.bound, self.claimed


class BusRegistry:
    """The bindings of every link; thread-safe (each link's thread asks it)."""

    def __init__(self, store: Store, links: Sequence[LinkConfig],
                 stations: Sequence[StationConfig]) -> None:
        self._store = store
        self._lock = threading.Lock()
        polled: dict[int, list[str]] = {}
        for link in links:
            for addr in link.stations:
                polled.setdefault(addr, []).append(link.port)
        self._registered = {s.id: s.address for s in stations}
        self._fixed: dict[tuple[str, int], str] = {}
        self._candidates: dict[int, set[str]] = {}  # addresses several links poll
        for station in stations:
            ports = polled.get(station.address, [])
            if len(ports) == 1:
                self._fixed[(ports[0], station.address)] = station.id
            elif ports:
                self._candidates.setdefault(station.address, set()).add(station.id)
        # What was learned, less what the registry now says otherwise (forgotten for good).
        self._learned: dict[tuple[str, int], str] = {}
        for where, learned in store.bindings().items():
            if (where in self._fixed or self._registered.get(learned, where[1]) != where[1]
                    or learned in self._fixed.values()):
                log.info("station %s no longer bound to address %d on %s: the registry says"
                         " otherwise", learned, where[1], where[0])
                store.unbind(*where)
            else:
                self._learned[where] = learned

    def bound(self, link: str, addr: int) -> str | None:
        """The station id bound at ``addr`` on ``link``, or None if none is yet."""
        with self._lock:
            return self._bound(link, addr)

    def _bound(self, link: str, addr: int) -> str | None:
        return self._fixed.get((link, addr)) or self._learned.get((link, addr))

    def _home(self, station: str) -> tuple[str, int] | None:
        for bindings in (self._fixed, self._learned):
            for where, bound in bindings.items():
                if bound == station:
                    return where
        return None

    def check(self, link: str, addr: int, station: str) -> Mismatch | None:
        """None if ``station`` may answer at ``addr`` on ``link`` (binding it there if this is
        its first HELLO), else why not."""
        with self._lock:
            bound = self._bound(link, addr)
            if bound == station:
                return None
            if bound is not None:
                return Mismatch(ADDRESS_TAKEN, bound, station,
                                f"address {addr} on {link} belongs to {bound}")
            registered = self._registered.get(station)
            if registered is not None and registered != addr:
                return Mismatch(ID_ELSEWHERE, None, station,
                                f"{station} is registered at address {registered}")
            home = self._home(station)
            if home is not None:
                return Mismatch(ID_ELSEWHERE, None, station,
                                f"{station} is bound at address {home[1]} on {home[0]}")
            free = {c for c in self._candidates.get(addr, ()) if self._home(c) is None}
            if free and station not in free:
                return Mismatch(ADDRESS_TAKEN, min(free), station,
                                f"address {addr} is registered for {', '.join(sorted(free))}")
            if not self._store.bind(link, addr, station):
                # Bound meanwhile by another process on this store: take what it holds.
                self._learned.update(self._store.bindings())
                return Mismatch(ADDRESS_TAKEN, self._learned.get((link, addr)), station,
                                f"address {addr} on {link} was bound meanwhile")
            self._learned[(link, addr)] = station
        log.info("station %s bound to address %d on %s (learned from its first HELLO)", station,
                 addr, link)
        return None
