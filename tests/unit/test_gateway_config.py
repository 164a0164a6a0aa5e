"""Gateway configuration: a valid file reads into dataclasses, every defect names its key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from watershed.gateway.config import (
    ConfigError,
    GatewayConfig,
    GatewayMqttConfig,
    LinkConfig,
    load_config,
)

EXAMPLE = """
[gateway]
id = "gw-zamora"
store = "/var/lib/watershed/gateway.db"

[mqtt]
host = "127.0.0.1"
port = 1883
prefix = "watershed"
keepalive_s = 30

[[link]]
port = "/dev/ttyUSB0"
baud = 9600
stations = [1, 2]
poll_interval_s = 5.0
reply_timeout_s = 2.0

[[station]]
id = "SAN-01"
address = 1
basin = "santiago"
channels = { 128 = "stage_backup_m" }
"""

MINIMAL = {"gateway": {"id": "gw-1"}, "link": [{"port": "loop://", "stations": [1]}]}


def problems_of(d: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        GatewayConfig.from_dict(d)
    return info.value.problems


def with_change(path: str, value: object) -> dict:
    """MINIMAL with one key set, the path written like the error messages (``link[0].baud``)."""
    d = copy.deepcopy(MINIMAL)
    *parents, last = path.split(".")
    node: object = d
    for part in parents:
        name, _, index = part.partition("[")
        node = node.setdefault(name, {}) if not index else node[name][int(index[:-1])]
    node[last] = value
    return d


def test_example_file_reads_into_dataclasses(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(EXAMPLE)
    config = load_config(path)
    assert config.id == "gw-zamora"
    assert config.time_sync is True
    assert config.mqtt == GatewayMqttConfig(host="127.0.0.1", port=1883, prefix="watershed",
                                            keepalive_s=30)
    assert config.links == (LinkConfig("/dev/ttyUSB0", 9600, (1, 2), 5.0, 2.0),)
    station = config.station("SAN-01")
    assert station is not None and station.basin == "santiago" and station.address == 1
    assert dict(station.channels) == {128: "stage_backup_m"}
    assert config.station("NOPE") is None


def test_minimal_config_takes_defaults() -> None:
    config = GatewayConfig.from_dict(MINIMAL)
    assert config.mqtt == GatewayMqttConfig()
    assert config.links[0].baud == 9600
    assert config.stations == ()


def test_confirmation_grace_has_a_default_and_can_be_set() -> None:
    assert GatewayConfig.from_dict(MINIMAL).mqtt.confirm_grace_s == 10.0
    d = copy.deepcopy(MINIMAL)
    d["mqtt"] = {"confirm_grace_s": 30}
    assert GatewayConfig.from_dict(d).mqtt.confirm_grace_s == 30.0


@pytest.mark.parametrize("gone", ["require_consumer", "replay_window_s"])
def test_the_keys_end_to_end_confirmation_replaced_are_refused(gone: str) -> None:
    d = copy.deepcopy(MINIMAL)
    d["mqtt"] = {gone: True}
    with pytest.raises(ConfigError, match=f"mqtt.{gone}"):
        GatewayConfig.from_dict(d)


def test_config_is_frozen() -> None:
    config = GatewayConfig.from_dict(MINIMAL)
    with pytest.raises(AttributeError):
        config.id = "other"  # type: ignore[misc]


def test_relative_store_path_is_taken_from_the_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nid = "gw-1"\nstore = "data/gw.db"\n'
                    '[[link]]\nport = "loop://"\nstations = [1]\n')
    assert load_config(path).store == str(tmp_path / "data" / "gw.db")


@pytest.mark.parametrize("path, value, named", [
    ("mqtt.hots", "localhost", "mqtt.hots: unknown key"),
    ("mqqt.host", "localhost", "mqqt: unknown key"),
    ("gateway.idd", "x", "gateway.idd: unknown key"),
    ("link[0].buad", 9600, "link[0].buad: unknown key"),
    ("gateway.id", "gw zamora", "gateway.id: 'gw zamora' is not a valid identifier"),
    ("gateway.time_sync", "yes", "gateway.time_sync: expected true or false"),
    ("mqtt.port", 70000, "mqtt.port: expected an integer from 1 to 65535"),
    ("mqtt.port", "1883", "mqtt.port: expected an integer"),
    ("mqtt.keepalive_s", True, "mqtt.keepalive_s: expected an integer"),
    ("mqtt.prefix", "water/#", "mqtt.prefix: 'water/#'"),
    ("mqtt.prefix", "a/b", "mqtt.prefix: 'a/b': must be one topic level"),
    ("mqtt.confirm_grace_s", 0, "mqtt.confirm_grace_s"),
    ("link[0].baud", "fast", "link[0].baud: expected an integer"),
    ("link[0].stations", [0], "link[0].stations: expected a non-empty list of bus addresses"),
    ("link[0].stations", [1, 1], "link[0].stations: an address is listed twice"),
    ("link[0].reply_timeout_s", 0, "link[0].reply_timeout_s: expected a number"),
    ("link[0].port", "", "link[0].port: expected a non-empty string"),
    ("link[0].wake_preamble", 65, "link[0].wake_preamble: expected an integer from 0 to 64"),
])
def test_a_bad_value_is_reported_under_its_key(path: str, value: object, named: str) -> None:
    problems = problems_of(with_change(path, value))
    assert any(p.startswith(named) for p in problems), problems


def test_missing_required_keys_are_named() -> None:
    assert problems_of({"link": [{"port": "loop://", "stations": [1]}]}) == [
        "gateway: required", "gateway.id: required"]
    assert problems_of({"gateway": {"id": "gw-1"}}) == ["link: at least one [[link]] is required"]
    assert problems_of(MINIMAL | {"link": [{"port": "p"}]}) == [
        "link[0].stations: required"]


def test_every_problem_is_reported_at_once() -> None:
    d = with_change("mqtt.hots", "x")
    d["link"][0]["baud"] = -1
    message = str(problems_of(d))
    assert "mqtt.hots" in message and "link[0].baud" in message


def test_station_channels_must_be_station_specific_and_valid() -> None:
    station = {"id": "SAN-01", "address": 1, "basin": "santiago"}
    for channels, named in [
        ({"12": "my_stage"}, "station[0].channels.12: station-specific channels are 128-255"),
        ({"128": "bad name"}, "station[0].channels.128: 'bad name' is not a valid channel name"),
        ({"129": "stage_m"}, "station[0].channels.129: 'stage_m' is the catalogue's name of "
                             "channel 1"),
    ]:
        problems = problems_of(MINIMAL | {"station": [station | {"channels": channels}]})
        assert problems == [problems[0]] and problems[0].startswith(named), problems


def test_station_ids_and_link_ports_are_unique() -> None:
    station = {"id": "SAN-01", "address": 1, "basin": "santiago"}
    assert problems_of(MINIMAL | {"station": [station, station | {"address": 2}]}) == [
        "station[1].id: 'SAN-01' is registered twice"]
    link = {"port": "loop://", "stations": [1]}
    assert problems_of(MINIMAL | {"link": [link, link]}) == [
        "link[1].port: 'loop://' is used by an earlier link"]


def test_same_address_on_two_links_is_allowed() -> None:
    links = [{"port": "/dev/ttyUSB0", "stations": [1]}, {"port": "/dev/ttyUSB1", "stations": [1]}]
    assert len(GatewayConfig.from_dict(MINIMAL | {"link": links}).links) == 2
    stations = [{"id": "SAN-01", "address": 1, "basin": "santiago"},
                {"id": "SAN-02", "address": 1, "basin": "santiago"}]
    config = GatewayConfig.from_dict(MINIMAL | {"link": links, "station": stations})
    assert len(config.stations) == 2  # one on each bus


def test_two_stations_at_one_address_of_one_link_are_refused_in_one_line() -> None:
    stations = [{"id": "SAN-01", "address": 1, "basin": "santiago"},
                {"id": "SAN-02", "address": 2, "basin": "santiago"},
                {"id": "SAN-03", "address": 1, "basin": "santiago"}]
    assert problems_of(MINIMAL | {"station": stations}) == [
        "station[2].address: SAN-01, SAN-03 are all registered at address 1, which 1 link(s) "
        "poll: one station per address per link"]


def test_unreadable_or_invalid_files_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_a_file_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text('[gateway]\nid = "gw 1"\n[mqtt]\nport = 70000\nhots = "x"\n'
                    '[[link]]\nport = "loop://"\nstations = [1]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith(f"{path}:2: gateway.id: 'gw 1' is not a valid identifier")
    assert problems[1] == f"{path}:4: mqtt.port: expected an integer from 1 to 65535, got 70000"
    assert problems[2].startswith(f"{path}:5: mqtt.hots: unknown key (known here: ")
    assert str(info.value) == "\n".join(problems)


def test_a_password_is_never_shown() -> None:
    problems = problems_of(MINIMAL | {"mqtt": {"username": MINIMAL["gateway"]["id"], "password": 90210}})
    assert problems == ["mqtt.password: expected a string, got an integer"]
    assert "hunter2" not in repr(GatewayMqttConfig(username="u", password="hunter2"))
