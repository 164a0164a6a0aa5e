"""The root cause of the intermittent loss in the 30-day scenario: the pipeline started the
gateway before the ingest had subscribed. On a broker that has never seen the ingest's
subscription (a fresh mosquitto: `watershed sim run`, `watershed demo`), the gateway's first
readings messages matched no subscription, so mosquitto acknowledged them to the gateway
(which marked them sent) and dropped them: MQTT 3.1.1 keeps QoS 1 messages only for existing
subscriptions. Under load the ingest's connect + SUBSCRIBE took longer than the gateway's
first poll, and the first slot of readings of the first station polled was lost silently.

The ingest here subscribes two wall seconds late, every time: the pipeline must wait for it."""

from __future__ import annotations

import threading
import uuid

import pytest

import watershed_sim.testbed as sim_testbed
from watershed.ingest.service import Ingest
from watershed_sim.testbed import Pipeline, PipelineSettings, demo_scenario

pytestmark = [pytest.mark.integration, pytest.mark.firmware]


class LateIngest(Ingest):
    """An ingest whose connection comes up two seconds late (a loaded machine, a slow broker)."""

    def start(self) -> None:
        threading.Timer(2.0, super().start).start()


def test_the_gateway_publishes_nothing_before_the_ingest_has_subscribed(
        tmp_path, mosquitto_factory, influxd, monkeypatch):
    monkeypatch.setattr(sim_testbed, "Ingest", LateIngest)
    broker = mosquitto_factory()  # fresh: no session of an earlier ingest holds a subscription
    scenario = demo_scenario(stations=1, hours=3, speed=1800)
    pipeline = Pipeline(PipelineSettings(workdir=tmp_path, scenario=scenario,
                                         database=f"startup_{uuid.uuid4().hex[:8]}"),
                        mosquitto=broker, influxd=influxd)
    try:
        pipeline.start()
        pipeline.run_for(scenario.duration_s)
        produced = pipeline.produced()
        reports = pipeline.wait_until_stored(produced, timeout_s=30)
        explanation = pipeline.explain_missing(reports)
    finally:
        pipeline.stop()
    assert sum(r.expected for r in reports) >= 3 * 4
    assert [(r.station, r.channel, r.missing) for r in reports if r.missing] == [], explanation
