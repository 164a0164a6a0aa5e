"""The ingest's fast path (contracts.influx.payload_lines: payload straight to line protocol,
no object per reading) gives exactly what the full path (decode_readings + message_lines, and
the Converter's checks) gives: the same lines for a good message, the same reason for a bad one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watershed.contracts.influx import message_lines, payload_lines
from watershed.contracts.mqtt import PayloadError, Topics, decode_readings
from watershed.contracts.wire import MAX_SEQ
from watershed.ingest.config import IngestConfig
from watershed.ingest.messages import Converter, decode_routed, readings_lines

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "mqtt_v1.json").read_text()
                     )["messages"]
VECTOR = VECTORS[0]
TOPICS = Topics()
NOW = 1763676900 + 3600

number_text = st.from_regex(r"-?(0|[1-9][0-9]{0,18})(\.[0-9]{1,22})?([eE][+-]?[0-9]{1,3})?",
                            fullmatch=True)
SPECIAL_VALUES = [
    "null", "true", "false", '"1.5"', "NaN", "-Infinity", "[]", "{}", "-0.0", "-0", "0", "0.0",
    "-0.000", "12.0", "-12.0", "12.00", "0.05", "-0.05", "1.000000", "1.0000000", "0.0000001",
    "123456789012.345", "9007199254740991", "9007199254740992", "-9007199254740991",
    "900719925474099.1", "9007199254740.991", "90071992547409.92", "-9007199254740991.5",
    "1e-7", "1.5E+3", "1E0", "-0e1", "0e1", "0E+2", "0.1e1", "1" + "0" * 70 + ".5",
    # contract 1.1 ranges: 15 significant digits, |exponent| <= 20
    "1E+16", "-1E+16", "999999999999999E+20", "999999999999999", "1000000000000000",
    "-1000000000000000", "100000000000000.0", "99999999999999.9", "1E+21", "1E-20", "1E-21",
    "0.00000000000000000001", "0.000000000000000000001", "627.8149733117711", "627.814973311771"]
value_text = st.one_of(number_text, st.sampled_from(SPECIAL_VALUES))
ident = st.one_of(st.sampled_from(["SAN-01", "gw-zamora", "santiago", "stage_m", "rain_mm"]),
                  st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,33}", fullmatch=True),
                  st.sampled_from(["", "SAN 01", "a,b", 'q"', "Ø", "x/y"]))
int_text = st.one_of(st.integers(-2, 2**64).map(str),
                     st.sampled_from(["1.0", "true", "null", '"3"', "1e3", "9007199254740991",
                                      "9007199254740992", "8589934591", "8589934592"]))
valid_or_not = st.one_of  # the first options valid: most messages pass, some do not
reading = st.fixed_dictionaries(
    {"seq": valid_or_not(st.integers(0, MAX_SEQ).map(str), int_text),
     "channel": valid_or_not(st.sampled_from(["stage_m", "rain_mm"]), ident).map(json.dumps),
     "ts": valid_or_not(st.integers(NOW - 5000, NOW + 700).map(str), int_text),
     "value": valid_or_not(value_text, st.just("null")),
     "flags": valid_or_not(st.sampled_from(["0", "128", "2"]), st.sampled_from(["1", "129"]),
                           int_text)})


def payload(gateway: str, station: str, basin: str, readings: list[dict[str, str]],
            drop: str | None) -> bytes:
    items = [",".join(f'"{k}":{v}' for k, v in r.items() if k != drop) for r in readings]
    return (f'{{"v":1,"gateway":{json.dumps(gateway)},"station":{json.dumps(station)},'
            f'"basin":{json.dumps(basin)},"readings":[{",".join("{" + i + "}" for i in items)}]}}'
            ).encode()


def outcome(f, *args):  # type: ignore[no-untyped-def]
    try:
        return f(*args)
    except PayloadError as e:
        return f"rejected: {e}"


@settings(max_examples=500)
@given(st.sampled_from(["gw-zamora"] * 4 + ["gw-other", "bad gw"]),
       st.sampled_from(["SAN-01"] * 4 + ["x y"]), ident, st.lists(reading, min_size=1, max_size=4),
       st.sampled_from([None] * 8 + ["value", "seq", "ts"]))
def test_fast_path_matches_full_path(gateway: str, station: str, basin: str,
                                     readings: list[dict[str, str]], drop: str | None) -> None:
    body = payload(gateway, station, basin, readings, drop)
    topic = TOPICS.readings("gw-zamora", "SAN-01")
    full = outcome(lambda: message_lines(decode_routed(TOPICS, topic, body)))
    assert outcome(readings_lines, TOPICS, topic, body) == full
    fast = payload_lines(body)
    if fast is not None:  # taken: the lines are the full path's
        assert fast[2] == message_lines(decode_readings(body))
    # The Converter (time bounds, registry), fast path against its full path (a range on a
    # channel that never occurs turns the fast path off without changing anything).
    config = {"validation": {"max_future_s": 600, "max_past_s": 3600},
              "stations": [{"id": "SAN-01", "gateways": ["gw-zamora"]}]}
    plain = Converter(IngestConfig.from_dict(config), {}, now=lambda: NOW)
    full_path = Converter(IngestConfig.from_dict({**config, "ranges": {"none-such": [0, 1]}}), {},
                          now=lambda: NOW)
    assert outcome(plain.lines, topic, body) == outcome(full_path.lines, topic, body)


@pytest.mark.parametrize("value", SPECIAL_VALUES)
@pytest.mark.parametrize("flags", [0, 1])
def test_value_forms(value: str, flags: int) -> None:
    body = VECTOR["payload"].encode().replace(b'"value":1.234,"flags":0',
                                              f'"value":{value},"flags":{flags}'.encode())
    topic = VECTOR["topic"]
    full = outcome(lambda: message_lines(decode_routed(TOPICS, topic, body)))
    assert outcome(readings_lines, TOPICS, topic, body) == full


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_vector_through_the_fast_path(vector: dict) -> None:
    fast = payload_lines(vector["payload"].encode())
    seqs = [r["seq"] for r in json.loads(vector["payload"])["readings"]]
    assert fast == ("gw-zamora", "SAN-01", vector["lines"], seqs)


def test_fast_path_declines_what_it_does_not_handle() -> None:
    base = json.loads(VECTOR["payload"])
    for change in ({"v": 2}, {"readings": []}, {"station": "SAN 01"}):
        assert payload_lines(json.dumps({**base, **change}).encode()) is None
    assert payload_lines(b"not json") is None
    assert payload_lines(VECTOR["payload"].encode(), ts_high=1763676900 - 1) is None
    assert payload_lines(VECTOR["payload"].encode(), ts_low=1763676900 + 1) is None


ODD_PAYLOADS = [
    # duplicate keys: the last one counts, in both paths
    VECTOR["payload"].replace('"seq":', '"seq":7,"seq":', 1),
    VECTOR["payload"].replace('"station":"SAN-01"', '"station":"x y","station":"SAN-01"'),
    # keys the contract does not have
    VECTOR["payload"].replace('"seq":', '"note":[1,{"a":null}],"seq":', 1),
    VECTOR["payload"].replace('"v":1', '"v":1,"extra":"yes"'),
    # wrong types where the fast path's decoder is typed
    VECTOR["payload"].replace('"v":1', '"v":true'),
    VECTOR["payload"].replace('"v":1', '"v":1.0'),
    VECTOR["payload"].replace('"seq":', '"seq":true,"x":', 1),
    VECTOR["payload"].replace('"value":1.234', '"value":"1.234"'),
    VECTOR["payload"].replace('"value":1.234', '"value":[1.234]'),
    VECTOR["payload"].replace('"value":1.234', '"value":true'),
    VECTOR["payload"].replace('"readings":[', '"readings":[1,'),
    VECTOR["payload"].replace('"readings":[', '"readings":{"a":[').replace("]}", "]}}", 1),
    VECTOR["payload"].replace('"gateway":"gw-zamora"', '"gateway":null'),
    # not an object, not UTF-8, not JSON at the end
    "[" + VECTOR["payload"] + "]",
    VECTOR["payload"] + " x",
    VECTOR["payload"].replace('"basin":"santiago"', '"basin":"santiago\\ud800"'),
]


@pytest.mark.parametrize("text", ODD_PAYLOADS)
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_odd_payloads_take_the_path_that_finds_the_same_answer(text: str, encoding: str) -> None:
    body = text.encode(encoding)
    topic = VECTOR["topic"]
    full = outcome(lambda: message_lines(decode_routed(TOPICS, topic, body)))
    assert outcome(readings_lines, TOPICS, topic, body) == full
    fast = payload_lines(body)
    assert fast is None or (isinstance(full, list) and fast[2] == full)
