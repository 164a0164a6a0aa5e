"""Edge flood alerts: threshold and rate-of-rise rules, edge-triggered, stored before sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watershed.contracts.mqtt import MessageReading
from watershed.gateway.alerts import AlertEngine
from watershed.gateway.config import AlertRule, StationConfig
from watershed.gateway.store import Store

T0 = 1763676900


def stage(seq: int, text_mantissa: int, minutes: int = 15) -> MessageReading:
    return MessageReading(seq, "stage_m", T0 + 60 * minutes * seq, text_mantissa, -3, 0)


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "gw.db") as s:
        yield s


def engine(store: Store, *rules: AlertRule) -> tuple[AlertEngine, list[int]]:
    woken: list[int] = []
    registry = {"SAN-01": StationConfig("SAN-01", 1, "santiago", alerts=rules)}
    return AlertEngine("gw-1", registry, store, on_alert=lambda: woken.append(1),
                       clock=lambda: T0 + 10**5), woken


def test_threshold_fires_once_per_crossing_and_rearms(store: Store) -> None:
    alerts, woken = engine(store, AlertRule("stage_m", above=3.5))
    values = [3000, 3400, 3600, 3700, 3300, 3550]
    alerts.evaluate("SAN-01", [stage(i + 1, v) for i, v in enumerate(values)])
    sent = store.unsent_alerts(10)
    assert len(sent) == 2 and woken == [1]
    first = json.loads(sent[0][2])
    assert (first["station"], first["channel"], first["seq"], first["rule"]) == (
        "SAN-01", "stage_m", 3, "above")
    assert '"value":3.600,' in sent[0][2]  # exact decimal text
    assert json.loads(sent[1][2])["seq"] == 6


def test_rate_of_rise_within_the_window(store: Store) -> None:
    alerts, _ = engine(store, AlertRule("stage_m", rise=0.5, within_s=3600))
    # +0.2 per 15 min: 0.6 within the hour by the fourth reading.
    alerts.evaluate("SAN-01", [stage(i + 1, 1000 + 200 * i) for i in range(6)])
    (alert,) = [json.loads(p) for _, _, p in store.unsent_alerts(10)]
    assert alert["rule"] == "rise" and alert["seq"] == 4 and alert["rise"] == pytest.approx(0.6)


def test_old_and_missing_readings_do_not_alert(store: Store) -> None:
    alerts, _ = engine(store, AlertRule("stage_m", above=1.0))
    alerts.evaluate("SAN-01", [stage(10, 500)])
    alerts.evaluate("SAN-01", [stage(5, 9000)])  # a backfilled reading: history, not news
    alerts.evaluate("SAN-01", [MessageReading(11, "stage_m", T0 + 99999, 0, 0, 1)])  # missing
    alerts.evaluate("OTHER", [stage(12, 9000)])  # no rules
    assert store.unsent_alerts(10) == []


def test_alerts_wait_in_the_store_until_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    with Store(path) as s:
        alerts, _ = engine(s, AlertRule("stage_m", above=1.0))
        alerts.evaluate("SAN-01", [stage(1, 2000)])
    with Store(path) as s:
        ((alert_id, station, _),) = s.unsent_alerts(10)
        s.mark_alert_sent(alert_id)
        assert station == "SAN-01" and s.unsent_alerts(10) == []
