"""The gateway sends TIME whenever a STATUS says the station's clock is not synchronised, not
only after a HELLO or a drift (issue 14, item 5: a station that rebuilt on a new config)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.unit.test_gateway_poller import (ADDR, HELLO_DATA, NOW, REGISTRY, STAGE, WANT_DATA,
                                            ScriptedPort, data, framed, hello, station)
from watershed.contracts import wire
from watershed.gateway.poller import Poller
from watershed.gateway.store import Store


def status(state: int) -> wire.Status:
    return wire.Status(ADDR, 100, int(NOW), state, 12600, 0, 1, 45, 0, 0, 0, 8000)


@pytest.mark.parametrize("state, times", [(0, 2), (wire.STATE_CLOCK_SYNCED, 1)])
def test_a_status_saying_unsynced_brings_a_time(tmp_path: Path, state: int, times: int) -> None:
    stats: Counter[str] = Counter()
    with Store(tmp_path / "gw.db") as store:
        poller = Poller(store, REGISTRY, stats, reply_timeout_s=0.2, time_sync=True,
                        clock=lambda: NOW, status_interval_s=0)
        want_status = HELLO_DATA | wire.WANT_STATUS
        port = ScriptedPort(station({
            want_status: [hello(), data(*STAGE), status(wire.STATE_CLOCK_SYNCED)],
            WANT_DATA | wire.WANT_STATUS: [data(), status(state)]}))
        poller.poll(framed(port, stats), ADDR)  # HELLO: TIME as always
        assert len(port.sent(wire.TimeSync)) == 1
        poller.poll(framed(port, stats), ADDR)  # a STATUS, its clock within the drift limit
        assert len(port.sent(wire.TimeSync)) == times
        assert stats["clock_unsynced"] == (1 if state == 0 else 0)
        assert stats["clock_drifts"] == 0
