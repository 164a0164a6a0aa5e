"""The forwarder's send order, stepped with no broker, store or clock: alerts first, live before
backlog, the in-flight window, and no row in two messages at once."""

from __future__ import annotations

from watershed.contracts.mqtt import MessageReading
from watershed.gateway.send_order import Page, SendOrder, live_reserve
from watershed.gateway.store import StoredReading

GW = "gw-t"


def rows(first_id: int, count: int, station: str = "SAN-01") -> list[StoredReading]:
    return [StoredReading(i, station, "b", MessageReading(i, "stage_m", 1763676900 + i, i, 0, 0))
            for i in range(first_id, first_id + count)]


def test_the_backlog_leaves_a_quarter_of_the_window_to_live_readings() -> None:
    order = SendOrder(GW, max_inflight=8, live_per_message=5, backlog_per_message=100)
    order.restart(newest_id=1000)  # 1000 stored before the connection: backlog
    assert live_reserve(8) == 2
    assert order.backlog_page() == Page(6 * 100, 0, 1000)
    for mid, (message, chunk) in enumerate(order.took_backlog(rows(1, 600)), start=1):
        order.sent(mid, chunk)
    assert order.inflight == 6 and order.room() == 2
    assert order.backlog_page() is None  # the rest of the window is the live readings'
    assert order.live_page() == Page(2 * 5, 1000)
    live = order.took_live(rows(1001, 7))
    assert [len(m.readings) for m, _ in live] == [5, 2]  # small messages


def test_a_row_in_flight_is_never_put_in_a_second_message() -> None:
    order = SendOrder(GW, max_inflight=4, live_per_message=10, backlog_per_message=10)
    order.restart(newest_id=0)
    [(message, chunk)] = order.took_live(rows(1, 3))
    order.sent(7, chunk)
    order.restart(newest_id=3)  # a reconnect: everything stored is backlog again
    assert order.took_backlog(rows(1, 3)) == []  # in flight (the session resends them)
    assert order.acknowledged(7) == ([1, 2, 3], None)
    assert order.acknowledged(7) is None  # once
    assert [r.id for _, c in order.took_backlog(rows(1, 3)) for r in c] == [1, 2, 3]


def test_an_empty_backlog_page_means_drained_until_the_next_restart() -> None:
    order = SendOrder(GW, max_inflight=4, live_per_message=10, backlog_per_message=10)
    order.restart(newest_id=5)
    assert order.took_backlog([]) == [] and order.backlog_done
    assert order.backlog_page() is None
    order.restart(newest_id=9)
    assert order.backlog_page() == Page(30, 0, 9)


def test_alerts_are_tracked_apart_and_not_sent_twice() -> None:
    order = SendOrder(GW, max_inflight=2, live_per_message=10, backlog_per_message=10)
    alerts = [(1, "SAN-01", "{}"), (2, "SAN-02", "{}")]
    assert order.alert_page() == Page(2, 0)
    for mid, (alert_id, _, _) in enumerate(order.took_alerts(alerts), start=10):
        order.sent_alert(mid, alert_id)
    assert order.room() == 0 and not order.idle and order.inflight == 0
    order.restart(newest_id=0)
    assert order.took_alerts(alerts) == []  # both still in flight
    assert order.acknowledged(10) == ([], 1)
    assert order.took_alerts(alerts) == [(1, "SAN-01", "{}")]
