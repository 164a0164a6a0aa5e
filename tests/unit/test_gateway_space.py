"""The store on a file system that really fills up: every write refused as StoreFull (never a
bare SQLite error), one log line per change of state, alerts kept in memory and handed out
meanwhile, and everything written once there is room again."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from watershed.contracts.mqtt import MessageReading
from watershed.contracts.wire import Hello
from watershed.gateway.space import SpaceChange
from watershed.gateway.store import Store, StoreFull
from tests.fixtures.filesystems import fill

T0 = 1763676900


def batch(first: int, count: int = 40) -> list[MessageReading]:
    return [MessageReading(seq, "stage_m", T0 + 60 * seq, seq, -3, 0)
            for seq in range(first, first + count)]


def space_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "watershed.gateway.space"]


def test_a_full_disk_is_one_state_with_alerts_in_memory_until_there_is_room(
        tiny_fs: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    filler = fill(tiny_fs, 400 * 1024)
    changes: list[SpaceChange] = []
    with Store(tiny_fs / "gw.db") as s:
        s.space.subscribe(changes.append)
        seq = 1
        with pytest.raises(StoreFull) as refused:
            while True:
                s.add("SAN-01", "b", batch(seq))
                seq += 40
        assert refused.value.reason == "disk"
        stored = seq - 1
        for _ in range(5):  # more refusals: no more log lines
            with pytest.raises(StoreFull):
                s.add("SAN-01", "b", batch(seq))
        assert s.space.full and s.space.refusals >= 6
        assert [c.full for c in changes] == [True]
        assert len(space_lines(caplog)) == 1
        # Nothing of a refused batch is stored or ACKed.
        assert s.ack_ranges("SAN-01").cumulative == seq
        # Facts are kept pending, not raised.
        s.record_hello(Hello(3, "SAN-01", "fw", 0, 1, 7, seq + 40, T0))
        # An alert raised now is kept in memory and handed out like a stored one.
        alert_id = s.add_alert("_gateway", '{"x":1}')
        assert s.unsent_alerts(10) == [(alert_id, "_gateway", '{"x":1}')]
        assert s.counts()["alerts_unsent"] == 1
        s.mark_alert_sent(alert_id)  # acknowledged by the broker: nothing to write yet
        assert s.unsent_alerts(10) == [] and s.counts()["alerts_unsent"] == 0
        late = s.add_alert("_gateway", '{"x":2}')
        assert late > alert_id
        filler.unlink()
        assert s.space.may_take_readings()
        assert s.add("SAN-01", "b", batch(seq)).new == 40
        assert not s.space.full and [c.full for c in changes] == [True, False]
        assert len(space_lines(caplog)) == 2 and "writable again" in space_lines(caplog)[1]
        # Written now, under the ids they were handed out with.
        rows = s.database.execute_read("SELECT id, payload, sent FROM alerts ORDER BY id")
        assert rows == [(alert_id, '{"x":1}', 1), (late, '{"x":2}', 0)]
        assert s.unsent_alerts(10) == [(late, "_gateway", '{"x":2}')]
        assert s.counts()["readings_received"] == stored + 40
    with Store(tiny_fs / "gw.db") as s:  # the pending facts were written at close
        assert s.station("SAN-01").boot_count == 7
        assert json.loads(s.unsent_alerts(10)[0][2]) == {"x": 2}
