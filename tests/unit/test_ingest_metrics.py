"""Metrics arithmetic: percentiles, the write window, consumer lag bookkeeping, the log line."""

from __future__ import annotations

from watershed.ingest.metrics import Unacked, WriteWindow, log_line, percentile, status_document


def test_nearest_rank_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == \
        (50.0, 99.0, 100.0)
    assert percentile([7.0], 99) == 7.0


def test_write_window_keeps_the_recent_writes() -> None:
    window = WriteWindow(size=3)
    assert window.summary()["latency_ms"] is None
    for points, seconds in ((100, 9.0), (10, 0.010), (20, 0.020), (30, 0.030)):
        window.observe(points, seconds)
    summary = window.summary()
    assert summary["writes"] == 3  # the 9 s write has left the window
    assert summary["latency_ms"] == {"p50": 20.0, "p99": 30.0, "max": 30.0}
    assert summary["batch_points"] == {"mean": 20.0, "max": 30}


def test_unacked_lag_is_the_oldest_message() -> None:
    unacked = Unacked()
    assert unacked.oldest_age_s() == 0.0
    unacked.add(1, 10)
    unacked.add(1, 11)
    unacked.add(2, 10)  # same packet id on a new connection: a different message
    assert len(unacked) == 3 and unacked.oldest_age_s() >= 0.0
    unacked.settle(1, 10)
    unacked.forget_sessions_before(2)
    assert len(unacked) == 1


def test_log_line_before_any_write() -> None:
    doc = status_document("ingest-1", "online", 0, {"received": 2}, WriteWindow().summary(), 2,
                          1.5)
    assert log_line(doc).startswith("ingest ingest-1: received 2, acked 0")
    assert "lag 1.5 s" in log_line(doc)
