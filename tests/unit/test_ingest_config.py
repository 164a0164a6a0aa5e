"""Ingest config: TOML in, frozen and validated dataclasses out, errors naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from watershed.ingest.config import ConfigError, IngestConfig, load_config

FULL_V1 = """
[ingest]
id = "ingest-2"
group = "ingest"
deadletter_file = "/tmp/dl.jsonl"

[mqtt]
host = "broker.local"
port = 8883
prefix = "basin"
username = "ingest-2"
password = "secret"

[influx]
api = "v1"
url = "http://db.local:8086"
database = "watershed"
retention_policy = "raw"
username = "writer"
password = "pw"
batch_size = 1000
flush_interval_s = 0.5
timeout_s = 3
parallel_writes = 3
"""


def test_full_v1_file(tmp_path: Path) -> None:
    path = tmp_path / "ingest.toml"
    path.write_text(FULL_V1)
    path.chmod(0o600)  # it holds passwords inline
    c = load_config(path)
    assert (c.ingest.id, c.ingest.group, c.ingest.deadletter_file) == ("ingest-2", "ingest",
                                                                       "/tmp/dl.jsonl")
    assert (c.mqtt.host, c.mqtt.port, c.mqtt.prefix, c.mqtt.username, c.mqtt.password) == (
        "broker.local", 8883, "basin", "ingest-2", "secret")
    i = c.influx
    assert (i.api, i.url, i.database, i.retention_policy, i.username, i.password) == (
        "v1", "http://db.local:8086", "watershed", "raw", "writer", "pw")
    assert (i.batch_size, i.flush_interval_s, i.timeout_s, i.parallel_writes) == (1000, 0.5, 3, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.influx.batch_size = 1  # type: ignore[misc]


def test_defaults_match_the_documented_example() -> None:
    c = IngestConfig.from_dict({})
    assert c.ingest.id == "ingest-1" and c.ingest.group == "ingest"
    assert (c.mqtt.host, c.mqtt.port, c.mqtt.prefix) == ("127.0.0.1", 1883, "watershed")
    assert (c.influx.api, c.influx.url, c.influx.database) == ("v1", "http://127.0.0.1:8086",
                                                               "watershed")
    assert (c.influx.batch_size, c.influx.flush_interval_s, c.influx.timeout_s,
            c.influx.parallel_writes) == (5000, 1.0, 10, 2)


def test_v2_needs_org_bucket_and_token() -> None:
    v2 = {"api": "v2", "org": "hydro", "bucket": "watershed", "token": "t0k"}
    assert IngestConfig.from_dict({"influx": v2}).influx.bucket == "watershed"
    for key in ("org", "bucket", "token"):
        with pytest.raises(ConfigError, match=rf"^influx\.{key}:"):
            IngestConfig.from_dict({"influx": {**v2, key: ""}})


def test_secrets_stay_out_of_repr() -> None:
    c = IngestConfig.from_dict({"mqtt": {"username": "ingest-1", "password": "hunter2"},
                                "influx": {"api": "v2", "org": "o", "bucket": "b",
                                           "token": "tok3n", "password": "pw9"}})
    assert not {"hunter2", "tok3n", "pw9"} & set(repr(c).replace("'", " ").split())


@pytest.mark.parametrize("data, key", [
    ({"ingest": {"id": "ingest/1"}}, "ingest.id"),
    ({"ingest": {"id": ""}}, "ingest.id"),
    ({"ingest": {"group": "a+b"}}, "ingest.group"),
    ({"ingest": {"deadletter_file": ""}}, "ingest.deadletter_file"),
    ({"mqtt": {"port": 0}}, "mqtt.port"),
    ({"mqtt": {"port": 70000}}, "mqtt.port"),
    ({"mqtt": {"port": "1883"}}, "mqtt.port"),
    ({"mqtt": {"port": True}}, "mqtt.port"),
    ({"mqtt": {"prefix": "a/b"}}, "mqtt.prefix"),
    ({"mqtt": {"host": ""}}, "mqtt.host"),
    ({"mqtt": {"password": "p"}}, "mqtt.password"),
    ({"influx": {"api": "v3"}}, "influx.api"),
    ({"influx": {"url": "127.0.0.1:8086"}}, "influx.url"),
    ({"influx": {"database": ""}}, "influx.database"),
    ({"influx": {"batch_size": 0}}, "influx.batch_size"),
    ({"influx": {"batch_size": 10.5}}, "influx.batch_size"),
    ({"influx": {"flush_interval_s": 0}}, "influx.flush_interval_s"),
    ({"influx": {"timeout_s": -1}}, "influx.timeout_s"),
    ({"influx": {"parallel_writes": 0}}, "influx.parallel_writes"),
    ({"influx": {"parallel_writes": 2.5}}, "influx.parallel_writes"),
    ({"influx": {"batchsize": 10}}, "influx.batchsize"),
    ({"influxdb": {}}, "influxdb"),
    ({"mqtt": "localhost"}, "mqtt"),
])
def test_errors_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        IngestConfig.from_dict(data)
    assert str(e.value).startswith(f"{key}:"), str(e.value)


def test_float_settings_accept_integers() -> None:
    c = IngestConfig.from_dict({"influx": {"flush_interval_s": 2, "timeout_s": 2.5}})
    assert (c.influx.flush_interval_s, c.influx.timeout_s) == (2, 2.5)


def test_unreadable_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[ingest\nid = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_a_file_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "ingest.toml"
    path.write_text('[ingest]\nid = "ingest/1"\n\n[influx]\nbatch_size = 0\nbatchsize = 10\n')
    with pytest.raises(ConfigError) as e:
        load_config(path)
    problems = e.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith(f"{path}:2: ingest.id: 'ingest/1' is not a valid identifier")
    assert problems[1] == f"{path}:5: influx.batch_size: expected an integer of at least 1, got 0"
    assert problems[2].startswith(f"{path}:6: influx.batchsize: unknown key (known here: ")


def test_secrets_of_the_wrong_type_are_not_echoed() -> None:
    with pytest.raises(ConfigError) as e:
        IngestConfig.from_dict({"mqtt": {"username": "ingest-1", "password": 31337},
                                "influx": {"api": "v2", "org": "o", "bucket": "b",
                                           "token": 271828, "password": 4242}})
    assert e.value.problems == ["mqtt.password: expected a string, got an integer",
                                "influx.password: expected a string, got an integer",
                                "influx.token: expected a string, got an integer"]
