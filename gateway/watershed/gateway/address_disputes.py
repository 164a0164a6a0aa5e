"""An address in dispute on one link, for the poller: a HELLO that does not fit the bus
bindings (identity.py), or two stations answering one POLL. While it lasts, HELLO is asked for
at every poll and the address's DATA is quarantined (quarantine.py), ACKed by its seqs alone --
unless the address is shared: an ACK there reaches every station at the address and could
delete readings the gateway never got, so none is sent. A shared address is clear again after
SHARED_CLEAR_POLLS polls answered by the bound station alone.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from watershed.contracts import wire

from .framed_port import FramedPort
from .identity import SHARED_ADDRESS, BusRegistry, Mismatch
from .late_replies import one_station
from .quarantine import Quarantine
from .runs import runs_of
from .station_session import StationSession

log = logging.getLogger(__name__)

MAX_ACK_RANGES = 16  # a bounded ACK; more holes than this mean a backfill is due anyway
SHARED_CLEAR_POLLS = 3  # polls answered by the bound station alone that clear a shared address

WarnOnce = Callable[..., None]  # (station, what, message, *args): logged once per (station, what)


class AddressDisputes:
    def __init__(self, link: str, identity: BusRegistry, quarantine: Quarantine,
                 stats: Counter[str], warn_once: WarnOnce) -> None:
        self._link = link
        self._identity = identity
        self._quarantine = quarantine
        self._stats = stats
        self._warn_once = warn_once

    def hello_fits(self, session: StationSession, hello: wire.Hello) -> bool:
        """Whether the HELLO may name whose DATA this is: it fits the bindings and the address
        is not (or no longer) in dispute."""
        mismatch = self._identity.check(self._link, hello.addr, hello.station_id)
        if mismatch is not None:
            self._stats["identity_mismatches"] += 1
            if session.dispute is None or session.dispute.kind != SHARED_ADDRESS:
                session.dispute = mismatch  # a shared address stays the stronger claim
            self._dispute(session, hello.addr)
            return False
        if session.dispute is not None:
            if session.dispute.kind == SHARED_ADDRESS:
                session.clean_polls += 1
                if session.clean_polls < SHARED_CLEAR_POLLS:
                    return False  # still in doubt: its DATA is quarantined
            log.warning("address %d on %s: station %s answers as itself again; readings are"
                        " taken again", hello.addr, self._link, hello.station_id)
            session.dispute = None
        return True

    def on_shared(self, session: StationSession, addr: int, ids: list[str]) -> None:
        """More than one station answered one POLL at ``addr``: the address is in dispute."""
        bound = self._identity.bound(self._link, addr)
        others = sorted({i for i in ids if i != bound})
        claimed = others[0] if others else bound or session.station_id
        if claimed is None:  # nobody ever said who: nothing to file it under; ask again
            session.station_id, session.needs_hello = None, True
            return
        self._stats["shared_address_polls"] += 1
        session.dispute = Mismatch(SHARED_ADDRESS, bound, claimed,
                                   f"stations {', '.join(sorted(set(ids))) or claimed} answered"
                                   f" one POLL at address {addr}")
        self._dispute(session, addr)

    def _dispute(self, session: StationSession, addr: int) -> None:
        assert session.dispute is not None
        session.station_id, session.needs_hello, session.clean_polls = None, True, 0
        session.needs_time = False
        self._quarantine.hold(session.dispute, self._link, addr)
        self._warn_once(session.dispute.claimed, f"{session.dispute.kind}:{addr}",
                        "address %d on %s: %s (%s); its readings are quarantined", addr,
                        self._link, session.dispute.kind, session.dispute.detail)

    def quarantine_data(self, port: FramedPort, session: StationSession,
                        data: wire.Data) -> bool:
        """DATA at an address in dispute: kept in quarantine, ACKed by its seqs alone unless
        the address is shared. True if more may wait (not at a shared address)."""
        assert session.dispute is not None
        if not data.readings:
            return False
        self._stats["readings_quarantined"] += self._quarantine.hold(
            session.dispute, self._link, data.addr, data.readings)
        if session.dispute.kind == SHARED_ADDRESS or not self.ack_safe(port, session, data):
            return False
        ranges = tuple(runs_of(r.seq for r in data.readings))
        port.send(wire.Ack(data.addr, 0, ranges[-MAX_ACK_RANGES:]))
        self._stats["acks"] += 1
        return True

    def ack_safe(self, port: FramedPort, session: StationSession, answered: wire.Data) -> bool:
        """No other station has answered at ``answered``'s address since that DATA: an ACK
        there would reach it too. Frames it sent make the address shared, and its DATA is
        quarantined; the same station answering a later POLL as well (``answered`` was late,
        late_replies.py) is no other."""
        addr = answered.addr
        late = wire.joined(port.waiting(addr))
        hellos = [f.station_id for f in late if isinstance(f, wire.Hello)]
        datas = [f for f in late if isinstance(f, wire.Data)]
        if not hellos and not datas:
            return True
        known = session.station_id or (session.dispute.claimed if session.dispute else None)
        if (session.dispute is None and set(hellos) <= {known}
                and one_station([], [answered, *datas])):
            self._stats["late_replies"] += len(datas)
            return True
        self.on_shared(session, addr, hellos + ([known] if known else []))
        if session.dispute is not None:
            for data in datas:
                self._stats["readings_quarantined"] += self._quarantine.hold(
                    session.dispute, self._link, addr, data.readings)
        return False
