"""The ingest's network thread over an in-memory MQTT session (tests/fixtures/memory_mqtt.py):
what it asks of its session, in which order. The same paths against real mosquitto and influxd:
tests/integration/test_ingest_service.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.memory_mqtt import MemorySession
from tests.fixtures.mqtt import wait_until
from tests.unit.test_ingest_pipeline import LINES, PAYLOAD, TOPIC, GatedWriter, ScriptedWriter
from watershed.backoff import Backoff
from watershed.ingest.config import IngestConfig
from watershed.ingest.service import Ingest

CONFIRM = "watershed/v1/gw-zamora/confirm"


@pytest.fixture
def session() -> MemorySession:
    return MemorySession()


@pytest.fixture
def ingest(tmp_path: Path, session: MemorySession):
    config = IngestConfig.from_dict({
        "ingest": {"id": "ingest-t", "group": "g", "deadletter_file": str(tmp_path / "dl.jsonl")},
        "influx": {"flush_interval_s": 0.05}})
    ingest = Ingest(config, writer=ScriptedWriter(), backoff=Backoff(0.01, 0.02),
                    session=session.factory)
    ingest.start()
    wait_until(lambda: ingest.stats()["subscribed"], "the SUBACK")
    yield ingest
    ingest.stop()


def test_it_subscribes_shared_with_manual_acks_and_a_last_will(ingest: Ingest,
                                                                session: MemorySession) -> None:
    assert session.subscriptions == ["$share/g/watershed/v1/+/+/readings"]
    endpoint = session.endpoint
    assert endpoint is not None and endpoint.manual_ack and not endpoint.clean_session
    assert endpoint.read_ahead and endpoint.client_id == "ingest-t"
    assert endpoint.will is not None and endpoint.will[0] == "watershed/v1/ingest/ingest-t/status"
    assert json.loads(endpoint.will[1])["state"] == "offline" and endpoint.will[2:] == (1, True)


def test_a_message_is_confirmed_then_acked_once_written(ingest: Ingest,
                                                         session: MemorySession) -> None:
    assert TOPIC.startswith("watershed/v1/gw-zamora/")
    mid = session.deliver(TOPIC, PAYLOAD)
    wait_until(lambda: session.acked, "an ack")
    assert session.acked == [mid]
    writer = ingest._writers[0]
    assert isinstance(writer, ScriptedWriter) and writer.calls == [LINES]
    # The confirmation goes out before the PUBACK: once acked, the broker forgets the message.
    order = [entry for entry in session.outgoing if entry in {("publish", CONFIRM), ("ack", mid)}]
    assert order == [("publish", CONFIRM), ("ack", mid)]
    assert session.wakes >= 1  # the worker cut the network thread's wait short


def test_acks_never_cross_connections(tmp_path: Path, session: MemorySession) -> None:
    """A message written after its connection is gone is not acked on the next one: the broker
    resends it, and its id may by then name another message."""
    config = IngestConfig.from_dict({
        "ingest": {"id": "ingest-t", "group": "g", "deadletter_file": str(tmp_path / "dl.jsonl")},
        "influx": {"flush_interval_s": 0.05}})
    writer = GatedWriter()
    ingest = Ingest(config, writer=writer, backoff=Backoff(0.01, 0.02), session=session.factory)
    ingest.start()
    try:
        wait_until(lambda: ingest.stats()["subscribed"], "the SUBACK")
        mid = session.deliver(TOPIC, PAYLOAD)
        wait_until(lambda: writer.calls, "a write")
        session.broker_up = False
        wait_until(lambda: not ingest.stats()["connected"], "the disconnect")
        session.broker_up = True
        wait_until(lambda: ingest.stats()["connects"] == 2, "the second connection")
        writer.gate.set()
        wait_until(lambda: ingest.stats()["acks_dropped"] == 1, "the ack dropped")
        assert mid not in session.acked and ingest.stats()["acks_sent"] == 0
    finally:
        writer.gate.set()
        ingest.stop()
