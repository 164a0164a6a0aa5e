"""The converter's checks: gateway owns the station, timestamps within bounds, ranges flagged,
and hostile names and values never reach the line protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watershed.contracts.mqtt import PayloadError, Topics
from watershed.ingest.config import IngestConfig
from watershed.ingest.messages import Converter

VECTOR = json.loads((Path(__file__).parents[1] / "vectors" / "mqtt_v1.json").read_text()
                    )["messages"][0]
TOPIC, PAYLOAD = VECTOR["topic"], VECTOR["payload"].encode()
NOW = 1763676900 + 3600


def converter(**config: object) -> Converter:
    return Converter(IngestConfig.from_dict(config), {}, now=lambda: NOW)


def test_vector_passes_unchanged() -> None:
    assert converter().lines(TOPIC, PAYLOAD) == VECTOR["lines"]


@pytest.mark.parametrize("validation, reason", [
    ({"max_future_s": 60}, None),
    ({"max_future_s": 60, "max_past_s": 600}, "ts: reading seq 41"),
])
def test_past_limit(validation: dict, reason: str | None) -> None:
    c = converter(validation=validation)
    if reason is None:
        assert c.lines(TOPIC, PAYLOAD)
    else:
        with pytest.raises(PayloadError, match=reason):
            c.lines(TOPIC, PAYLOAD)


def test_future_limit() -> None:
    c = Converter(IngestConfig.from_dict({"validation": {"max_future_s": 60}}), {},
                  now=lambda: 1763676900 - 3600)
    with pytest.raises(PayloadError, match="s in the future"):
        c.lines(TOPIC, PAYLOAD)


def test_registry_ownership_and_registration() -> None:
    owned = {"stations": [{"id": "SAN-01", "gateways": ["gw-other"]}]}
    with pytest.raises(PayloadError, match="gateway gw-zamora does not own station SAN-01"):
        converter(**owned).lines(TOPIC, PAYLOAD)
    strict = {"stations": [{"id": "SAN-02"}], "validation": {"require_registered": True}}
    with pytest.raises(PayloadError, match="not registered"):
        converter(**strict).lines(TOPIC, PAYLOAD)
    assert converter(stations=[{"id": "SAN-02"}]).lines(TOPIC, PAYLOAD)


def test_values_outside_a_range_are_flagged_not_dropped() -> None:
    lines = converter(ranges={"stage_m": [0, 1.4]}).lines(TOPIC, PAYLOAD)
    assert lines[0] == VECTOR["lines"][0]  # 1.234 is inside
    # 1.50 > 1.4: kept with its value, flags event (128) + out_of_range (2)
    assert lines[2] == VECTOR["lines"][2].replace("flags=128i", "flags=130i")
    assert lines[1:2] + lines[3:] == VECTOR["lines"][1:2] + VECTOR["lines"][3:]


HOSTILE = ['SAN 01', 'SAN,01', 'SAN=01', 'SAN"01', "SAN\\01", "SAN\n01", "SAN-Ø1", "",
           "a" * 33, "SAN/01", "x\u2028y", "readings,station=X value=1 1"]


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("where", ["station", "channel", "gateway", "basin"])
def test_injection_in_names_is_rejected(name: str, where: str) -> None:
    message = json.loads(PAYLOAD)
    if where == "channel":
        message["readings"][0]["channel"] = name
    else:
        message[where] = name
    topic = Topics().readings(message["gateway"], message["station"]) \
        if "/" not in name and where in ("gateway", "station") else TOPIC
    with pytest.raises(PayloadError):
        converter().lines(topic, json.dumps(message).encode())


@pytest.mark.parametrize("value", ['"1.2"', '"1.2 1763676900\\nreadings x=1"', "true",
                                   "1e400", "NaN", '{"a":1}'])
def test_injection_in_values_is_rejected(value: str) -> None:
    payload = PAYLOAD.replace(b'"value":1.234', f'"value":{value}'.encode())
    with pytest.raises(PayloadError):
        converter().lines(TOPIC, payload)


# Contract 1.1 ranges (docs/contracts.md 1.2, 1.4, 2): the ingest applies the wire's.
@pytest.mark.parametrize("field, text, reason", [
    ("seq", "9007199254740992", "seq: expected an integer in"),  # 2**53
    ("seq", "9223372036854775813", "seq: expected an integer in"),  # 2**63 + 5
    ("ts", "8589934592", "ts: expected an integer in"),  # 2**33
    ("flags", "256", "flags: expected an integer in"),
    ("value", "1000000000000000", "more digits than the contract allows"),  # 16 digits
    ("value", "627.8149733117711", "more digits than the contract allows"),
    ("value", "10000000000000000", "more digits than the contract allows"),  # was 1e16's form
    ("value", "1E+21", "more digits than the contract allows"),
    ("value", "1E-21", "more digits than the contract allows"),
])
def test_numbers_beyond_the_contract_ranges_are_rejected(field: str, text: str,
                                                         reason: str) -> None:
    message = json.loads(PAYLOAD)
    message["readings"][0][field] = "@"
    payload = json.dumps(message).replace('"@"', text).encode()
    with pytest.raises(PayloadError, match=reason):
        converter(validation={"max_future_s": 0}).lines(TOPIC, payload)


@pytest.mark.parametrize("field, text, value_line", [
    ("seq", "9007199254740991", "value=1.234"),
    ("ts", "8589934591", "value=1.234"),
    ("value", "999999999999999", "value=999999999999999"),
    ("value", "1E+16", "value=1E+16"),
    ("value", "0", "value=0"),
    ("value", "-999999999999999E+20", "value=-9.99999999999999E+34"),
    ("value", "0.00000000000000000001", "value=1E-20"),
])
def test_numbers_at_the_contract_limits_pass(field: str, text: str, value_line: str) -> None:
    message = json.loads(PAYLOAD)
    message["readings"][0][field] = "@"
    payload = json.dumps(message).replace('"@"', text).encode()
    line = converter(validation={"max_future_s": 0}).lines(TOPIC, payload)[0]
    assert f",{value_line} " in line and (field == "value" or f"{text}" in line)
