"""The ``[mqtt]`` table both programs read (watershed/mqtt/config.py): one class, one reader,
the gateway's publishing keys its own."""

from __future__ import annotations

import pytest

from watershed.config_reader import ConfigError
from watershed.gateway.config import GatewayConfig, GatewayMqttConfig
from watershed.ingest.config import IngestConfig
from watershed.mqtt.config import MqttConfig

GATEWAY = {"gateway": {"id": "gw-1"}, "link": [{"port": "loop://", "stations": [1]}]}


def test_both_programs_read_the_same_connection() -> None:
    table = {"host": "127.0.0.2", "port": 8883, "prefix": "basin", "username": "x",
             "password": "pw", "tls": True, "ca_file": "ca.pem"}
    gateway = GatewayConfig.from_dict(GATEWAY | {"gateway": {"id": "x"},
                                                 "mqtt": table}).mqtt
    ingest = IngestConfig.from_dict({"ingest": {"id": "x"}, "mqtt": table}).mqtt
    assert isinstance(gateway, GatewayMqttConfig) and type(ingest) is MqttConfig
    assert gateway.connection() == ingest.connection() == {
        "host": "127.0.0.2", "port": 8883, "prefix": "basin", "username": "x",
        "password": "pw", "tls": True, "ca_file": "ca.pem", "cert_file": "", "key_file": ""}


def test_the_publishing_keys_are_the_gateways_alone() -> None:
    with pytest.raises(ConfigError) as info:
        IngestConfig.from_dict({"mqtt": {"max_inflight": 5, "keepalive_s": 10}})
    assert [p.split(" (")[0] for p in info.value.problems] == [
        "mqtt.max_inflight: unknown key", "mqtt.keepalive_s: unknown key"]
    assert GatewayConfig.from_dict(GATEWAY | {"mqtt": {"max_inflight": 5}}).mqtt.max_inflight == 5


def test_the_endpoint_carries_the_credentials_and_hides_the_password() -> None:
    config = MqttConfig(host="127.0.0.3", port=1884, username="gw-1", password="hunter2",
                        tls=True, cert_file="c.pem", key_file="k.pem")
    endpoint = config.endpoint("gw-1", keepalive_s=12, clean_session=True)
    assert (endpoint.host, endpoint.port, endpoint.client_id, endpoint.username,
            endpoint.password, endpoint.tls, endpoint.cert_file, endpoint.key_file,
            endpoint.keepalive_s, endpoint.clean_session) == (
        "127.0.0.3", 1884, "gw-1", "gw-1", "hunter2", True, "c.pem", "k.pem", 12, True)
    assert "hunter2" not in repr(config) and "hunter2" not in repr(endpoint)
    assert "hunter2" not in repr(GatewayMqttConfig(username="u", password="hunter2"))
