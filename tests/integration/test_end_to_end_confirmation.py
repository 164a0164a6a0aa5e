"""Nothing lost, end to end: a gateway keeps each reading until an ingest confirms it is in
InfluxDB. Real mosquitto (killed, restarted), the real ingest, a real influxd; the gateway's
forwarder and store as the daemon runs them. Each test compares what the gateway stored with
what InfluxDB holds, value by value.

mosquitto 2.0.11 does not restore ``$share/...`` subscriptions after a restart: a message
published before the ingest subscribes again is acknowledged and dropped. Broker
acknowledgements alone lost such readings silently; confirmations find and resend exactly them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.mqtt import wait_until
from tests.fixtures.servers import MosquittoFactory
from watershed.contracts.mqtt import MessageReading
from watershed.devservers import Influxd, Mosquitto
from watershed.gateway.config import GatewayMqttConfig
from watershed.gateway.forwarder import Forwarder
from watershed.gateway.store import Store
from watershed.hydro.influxql import query
from watershed.ingest.config import IngestConfig
from watershed.backoff import Backoff
from watershed.ingest.service import Ingest

pytestmark = pytest.mark.integration

T0 = 1763676900
GW = "gw-e2e"
STATION = "SAN-01"


def reading(seq: int) -> MessageReading:
    # Exact decimals of several shapes: trailing zeros, negatives, large exponents.
    mantissa = (seq * 7919) % 2_000_001 - 1_000_000
    return MessageReading(seq, "stage_m", T0 + 60 * seq, mantissa, -(seq % 5), 0)


class Pipeline:
    """A gateway store and forwarder, ingests, a broker and a database, for one test."""

    def __init__(self, broker: Mosquitto, influxd: Influxd, database: str, tmp_path: Path) -> None:
        self.broker = broker
        self.influxd = influxd
        self.database = database
        self.tmp_path = tmp_path
        self.store = Store(tmp_path / "gw.db")
        self.forwarder: Forwarder | None = None
        self.ingests: list[Ingest] = []
        self.group = f"g{uuid.uuid4().hex[:6]}"

    def ingest_config(self, ingest_id: str) -> IngestConfig:
        return IngestConfig.from_dict({
            "ingest": {"id": ingest_id, "group": self.group, "status_interval_s": 1,
                       "deadletter_file": str(self.tmp_path / f"{ingest_id}.jsonl")},
            "mqtt": {"host": self.broker.host, "port": self.broker.port},
            "influx": {"url": self.influxd.url, "database": self.database,
                       "flush_interval_s": 0.2, "timeout_s": 2},
        })

    def start_ingest(self, ingest_id: str = "ingest-1") -> Ingest:
        ingest = Ingest(self.ingest_config(ingest_id), backoff=Backoff(0.1, 0.5))
        self.ingests.append(ingest)
        ingest.start()
        wait_until(lambda: ingest.stats()["subscribed"], f"{ingest_id} subscribed")
        return ingest

    def start_gateway(self) -> Forwarder:
        config = GatewayMqttConfig(host=self.broker.host, port=self.broker.port,
                                   reconnect_min_s=0.05, reconnect_max_s=0.3, confirm_grace_s=2.0)
        self.forwarder = Forwarder(GW, config, self.store)
        self.forwarder.start()
        return self.forwarder

    def add(self, seqs: range) -> None:
        self.store.add(STATION, "santiago", [reading(s) for s in seqs])
        assert self.forwarder is not None
        self.forwarder.notify()

    def stored_in_influx(self) -> dict[int, tuple[Decimal, int]]:
        series = query(self.influxd.url, self.database,
                       f"SELECT seq, value, flags FROM readings WHERE station = '{STATION}'")
        return {int(row["seq"]): (Decimal(str(row["value"])), int(row["flags"]))
                for _, rows in series for row in rows}

    def expect_all_confirmed(self, seqs: range, timeout_s: float = 60) -> None:
        wait_until(lambda: self.store.counts()["readings_confirmed"] >= len(seqs)
                   and self.store.counts()["unconfirmed"] == 0 and not self.store.unsent(1),
                   "every reading confirmed by an ingest", timeout=timeout_s)
        want = {s: (reading(s).value, 0) for s in seqs}
        assert self.stored_in_influx() == want  # value by value, exact

    def close(self) -> None:
        if self.forwarder is not None:
            self.forwarder.stop(2)
        for ingest in self.ingests:
            ingest.stop()
        self.store.close()


@pytest.fixture
def pipeline(mosquitto_factory: MosquittoFactory, influxd: Influxd, fresh_influx_db: str,
             tmp_path: Path) -> Iterator[Callable[..., Pipeline]]:
    made: list[Pipeline] = []

    def make(**broker: Any) -> Pipeline:
        made.append(Pipeline(mosquitto_factory(**broker), influxd, fresh_influx_db, tmp_path))
        return made[-1]

    yield make
    for p in made:
        p.close()


def test_readings_a_restarted_broker_dropped_are_resent_and_only_those(
        pipeline: Callable[..., Pipeline]) -> None:
    """The ingest's shared subscription is gone after the restart until it subscribes again:
    what the gateway publishes meanwhile is acknowledged and dropped. Every one of those
    arrives; nothing confirmed before the restart is published twice."""
    p = pipeline(autosave_s=3600)
    ingest = p.start_ingest()
    forwarder = p.start_gateway()
    p.add(range(1, 101))
    p.expect_all_confirmed(range(1, 101))
    ingest.stop()  # its persistent session stays at the broker, subscribed ...
    p.broker.save()
    p.broker.kill()
    p.broker.restart()  # ... and comes back without the $share subscription
    wait_until(lambda: forwarder.stats()["connects"] == 2, "the gateway to reconnect")
    p.add(range(101, 151))  # acknowledged by the broker, matched by no subscription
    wait_until(lambda: p.store.counts()["unconfirmed"] == 50 and not p.store.unsent(1),
               "the broker's acknowledgements")
    assert set(p.stored_in_influx()) == set(range(1, 101))  # they are gone from the broker
    p.start_ingest()
    p.expect_all_confirmed(range(1, 151))
    stats = forwarder.stats()
    assert stats["readings_resent"] == 50  # exactly the dropped ones
    assert stats["readings_acked"] == 200  # 150 readings, 50 of them twice: no other copies


def test_a_crashed_broker_loses_what_it_had_not_saved_and_the_gateway_resends_it(
        pipeline: Callable[..., Pipeline]) -> None:
    """Queued for an offline ingest, acknowledged, then the broker dies before its save."""
    p = pipeline(autosave_s=3600)
    ingest = p.start_ingest()
    forwarder = p.start_gateway()
    p.add(range(1, 21))
    p.expect_all_confirmed(range(1, 21))
    ingest.stop()
    p.broker.save()
    p.add(range(21, 61))  # queued in the ingest's session, in memory only
    wait_until(lambda: p.store.counts()["unconfirmed"] == 40 and not p.store.unsent(1),
               "the broker's acknowledgements")
    p.broker.kill()
    p.broker.restart()
    p.start_ingest()
    p.expect_all_confirmed(range(1, 61))
    assert forwarder.stats()["readings_resent"] == 40


def test_a_gateway_restart_keeps_unconfirmed_readings_owed(
        pipeline: Callable[..., Pipeline], tmp_path: Path) -> None:
    """Confirmation state is durable: a gateway that stops with readings acknowledged by the
    broker but unconfirmed (the ingest is down) delivers them after its restart."""
    p = pipeline()
    forwarder = p.start_gateway()
    p.add(range(1, 31))
    wait_until(lambda: p.store.counts()["unconfirmed"] == 30, "the broker's acknowledgements")
    forwarder.stop(2)
    p.store.close()
    p.broker.kill()  # and the broker forgets them (never saved: no subscriber either)
    p.broker.restart()
    p.store = Store(tmp_path / "gw.db")
    assert p.store.counts()["unconfirmed"] == 30
    p.start_ingest()
    p.start_gateway()
    p.expect_all_confirmed(range(1, 31))


def test_two_ingests_on_one_shared_subscription_confirm_everything_once_written(
        pipeline: Callable[..., Pipeline]) -> None:
    p = pipeline()
    first, second = p.start_ingest("ingest-1"), p.start_ingest("ingest-2")
    forwarder = p.start_gateway()
    for start in range(1, 401, 50):
        p.add(range(start, start + 50))
    p.expect_all_confirmed(range(1, 401))
    written = [i.stats()["messages_written"] for i in (first, second)]
    assert all(written) and forwarder.stats()["readings_resent"] == 0


def test_an_ingest_that_leaves_mid_stream_costs_nothing(pipeline: Callable[..., Pipeline]
                                                         ) -> None:
    """What the broker still queues for the ingest that left waits in its session; once the
    ingest that stays has settled everything, the gateway resends what was not confirmed."""
    p = pipeline()
    p.start_ingest("ingest-1")
    leaving = p.start_ingest("ingest-2")
    p.start_gateway()
    p.add(range(1, 201))
    leaving.stop()
    p.add(range(201, 401))
    p.expect_all_confirmed(range(1, 401))


def test_readings_published_before_any_ingest_subscribed_arrive_once_one_does(
        pipeline: Callable[..., Pipeline]) -> None:
    """A fresh broker (first install, or one that lost its store) drops what no subscription
    matches: the readings the gateway published before the ingest's first start go again."""
    p = pipeline()
    forwarder = p.start_gateway()
    p.add(range(1, 41))
    wait_until(lambda: p.store.counts()["unconfirmed"] == 40, "the broker's acknowledgements")
    p.start_ingest()
    p.expect_all_confirmed(range(1, 41))
    assert forwarder.stats()["readings_resent"] == 40
