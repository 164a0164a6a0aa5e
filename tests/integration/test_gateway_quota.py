"""A running gateway filled to its store quota while the uplink is down: it sheds by priority
(housekeeping, then weather, then river; never the newest flood-event readings), oldest first,
and every reading it drops is in the loss ledger, exactly, as health reports it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from watershed.contracts.wire import EVENT
from watershed.gateway.config import GatewayConfig
from watershed.gateway.daemon import Gateway
from watershed_sim.py_station import PyStation, StationBus
from watershed_sim.serial_link import VirtualSerialLink

from .test_gateway_end_to_end import (
    SAN,
    Subscriber,
    config_dict,
    wait_until,
)
from .test_gateway_resilience import Watcher

pytestmark = pytest.mark.integration

# The smallest quota the config allows (1 MiB) holds ~7,500 readings of SAN-01 once the WAL
# reserve and the store's own pages are set aside. River and flood readings alone overflow it, so every
# housekeeping and weather reading must go, and then the oldest river readings.
HOUSEKEEPING, WEATHER, RIVER, FLOOD = 1500, 1500, 10_000, 30  # (1 KiB pages: store/database.py)
CHANNELS = {32: "battery_v", 16: "rain_mm", 1: "stage_m"}


@pytest.fixture
def link() -> Iterator[VirtualSerialLink]:
    with VirtualSerialLink() as vl:
        yield vl


def test_a_full_store_sheds_by_priority_and_the_ledger_in_health_is_exact(
        tmp_path: Path, mosquitto_factory, link: VirtualSerialLink) -> None:
    gateway_id = f"gw-{uuid.uuid4().hex[:8]}"
    broker = mosquitto_factory()
    subscriber = Subscriber(broker.port, gateway_id)  # persistent session, kept while down
    broker.stop()  # the uplink is down the whole time the store fills

    station = PyStation(SAN, "SAN-01")
    housekeeping = station.take(HOUSEKEEPING, 32)
    weather = station.take(WEATHER, 16)
    river = station.take(RIVER, 1)
    flood = station.take(FLOOD, 1, EVENT)
    produced = station.next_seq - 1
    bus = StationBus(link.station_path, station)

    d = config_dict(tmp_path, gateway_id, broker.port, link.gateway_path)
    d["link"][0]["stations"] = [SAN]
    d["gateway"].update(store_quota_bytes=1024 * 1024, protected_event_readings=FLOOD)
    d["mqtt"].update(max_readings_per_message=50)
    gateway = Gateway(GatewayConfig.from_dict(d))
    gateway.start()
    watcher = None
    try:
        # Everything is stored or shed, and ACKed either way: the station's flash is free.
        wait_until(bus.outbox_empty, timeout_s=120, what="every reading stored or shed")
        assert gateway.store.counts()["readings_received"] == produced
        ledger = gateway.store.loss_ledger()["SAN-01"]
        assert ledger["shed_housekeeping"] == HOUSEKEEPING
        assert ledger["shed_weather"] == WEATHER
        assert 0 < ledger["shed_river"] < RIVER
        assert set(ledger) == {"shed_housekeeping", "shed_weather", "shed_river"}
        shed = sum(ledger.values())
        health = gateway.health()
        assert health["stations"]["SAN-01"]["losses"] == {"total": shed, **ledger}
        assert health["store"]["losses_total"] == shed
        assert health["store"]["readings_shed"] == shed
        assert health["queue"]["unsent"] == produced - shed
        # The quota bounds the files on disk: database + WAL + journal + WAL index.
        assert health["store_files_bytes"] <= health["store"]["quota_bytes"]
        assert sum(f.stat().st_size for f in Path(d["gateway"]["store"]).parent.iterdir()
                   if f.name.startswith("gateway.db")) <= health["store"]["quota_bytes"]
        assert gateway.stats()["links"][link.gateway_path]["readings_shed"] == shed

        # The uplink comes back: what was kept arrives, and it is exactly what was not shed.
        broker.start()
        wait_until(lambda: len(subscriber.readings()) >= produced - shed, timeout_s=60,
                   what="the kept readings at the subscriber")
        delivered = {r.seq for _, _, r in subscriber.readings()}
        assert len(delivered) == produced - shed
        assert delivered.isdisjoint(housekeeping) and delivered.isdisjoint(weather)
        assert set(flood) <= delivered  # the newest flood-event readings are never shed
        river_lost = sorted(set(river) - delivered)
        assert len(river_lost) == ledger["shed_river"]
        assert river_lost == list(river)[:len(river_lost)]  # oldest first
        # Every reading produced is delivered or counted lost, none both.
        assert len(delivered) + shed == produced

        # The retained health message says the same.
        wait_until(lambda: gateway.store.counts()["unsent"] == 0, what="every PUBACK")
        gateway.forwarder._next_health = 0.0  # publish health now, not in a minute
        watcher = Watcher(broker.port, gateway_id)

        def health_with_ledger() -> bool:
            gateway.forwarder._next_health = 0.0
            return any(h["stations"].get("SAN-01", {}).get("losses", {}).get("total") == shed
                       and h["queue"]["unsent"] == 0 for h in watcher.on("/health"))

        wait_until(health_with_ledger, what="the ledger in the health message")
        health = [h for h in watcher.on("/health") if h["queue"]["unsent"] == 0][-1]
        assert health["stations"]["SAN-01"]["losses"] == {"total": shed, **ledger}
    finally:
        gateway.stop()
        bus.close()
        subscriber.close()
        if watcher is not None:
            watcher.close()
