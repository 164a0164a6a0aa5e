"""Station ownership (ingest/owners.py): the first gateway heard owns a station, durably, until
an operator moves it; readings from any other gateway are refused one by one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watershed.contracts.mqtt import Topics
from watershed.ingest.config import IngestConfig
from watershed.ingest.messages import Converter
from watershed.ingest.owners import Owners

VECTOR = json.loads((Path(__file__).parents[1] / "vectors" / "mqtt_v1.json").read_text()
                    )["messages"][0]
PAYLOAD = json.loads(VECTOR["payload"])
NOW = 1763676900 + 3600


def message(gateway: str, station: str = "SAN-02") -> tuple[str, bytes]:
    payload = dict(PAYLOAD, gateway=gateway, station=station)
    return Topics().readings(gateway, station), json.dumps(payload).encode()


def converter(owners: Owners, **config: object) -> Converter:
    return Converter(IngestConfig.from_dict(config), {}, now=lambda: NOW, owners=owners)


def test_first_gateway_owns_and_another_is_refused_reading_by_reading(tmp_path: Path) -> None:
    owners = Owners(tmp_path / "owners.jsonl", "ingest-1", clock=lambda: NOW)
    c = converter(owners)
    assert c.convert(*message("gw-b")).lines  # gw-b heard first: it owns SAN-02
    attack = c.convert(*message("gw-a"))
    assert attack.lines == []
    assert len(attack.rejected) == len(PAYLOAD["readings"])
    assert {seq for seq, _ in attack.rejected} == {r["seq"] for r in PAYLOAD["readings"]}
    assert all("gateway gw-a does not own station SAN-02 (owned by gw-b" in why
               for _, why in attack.rejected)
    assert owners.refused == len(PAYLOAD["readings"])
    assert c.convert(*message("gw-b")).lines  # the owner goes on


def test_ownership_survives_a_restart_and_a_move_is_recorded_with_time(tmp_path: Path) -> None:
    path = tmp_path / "owners.jsonl"
    converter(Owners(path, "ingest-1", clock=lambda: NOW)).convert(*message("gw-b"))
    ticks = [0.0]
    restarted = Owners(path, "ingest-1", clock=lambda: NOW + 60, monotonic=lambda: ticks[0])
    restarted.load()
    c = converter(restarted)
    assert c.convert(*message("gw-a")).rejected  # still gw-b's after the restart
    # An operator moves it (another process: `watershed station move`), same file.
    previous = Owners(path, "cli", clock=lambda: NOW + 120).move("SAN-02", "gw-a", "alice")
    assert previous is not None and previous.gateway == "gw-b"
    ticks[0] += 5  # the running ingest re-reads the file within REFRESH_S
    assert c.convert(*message("gw-a")).lines
    assert c.convert(*message("gw-b")).rejected
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records == [
        {"station": "SAN-02", "gateway": "gw-b", "at": NOW, "by": "first-seen:ingest-1"},
        {"station": "SAN-02", "gateway": "gw-a", "at": NOW + 120, "by": "move:alice"}]


def test_a_torn_last_line_is_ignored_and_the_next_record_is_kept(tmp_path: Path,
                                                                   caplog) -> None:
    path = tmp_path / "owners.jsonl"
    path.write_bytes(b'{"station":"SAN-01","gateway":"gw-a","at":1,"by":"first-seen:i"}\n'
                     b'{"station":"SAN-0')
    owners = Owners(path, "ingest-1", clock=lambda: NOW)
    owners.load()
    assert "not an ownership record" in caplog.text
    assert owners.owner("SAN-01").gateway == "gw-a"
    assert owners.claim("SAN-02", "gw-b").gateway == "gw-b"
    again = Owners(path, "ingest-1")
    again.load()
    assert again.owner("SAN-02").gateway == "gw-b"


def test_without_a_file_ownership_still_holds() -> None:
    c = converter(Owners(None))
    assert c.convert(*message("gw-b")).lines
    assert c.convert(*message("gw-a")).rejected


def test_config_owners_override_the_file_and_empty_gateways_is_not_anyone(tmp_path: Path
                                                                          ) -> None:
    owners = Owners(tmp_path / "owners.jsonl")
    c = converter(owners, stations=[{"id": "SAN-02", "gateways": ["gw-a", "gw-c"]},
                                    {"id": "SAN-03"}])
    assert c.convert(*message("gw-a")).lines and c.convert(*message("gw-c")).lines
    assert c.convert(*message("gw-b")).rejected
    assert owners.refused == len(PAYLOAD["readings"])  # counted (and alerted) all the same
    assert owners.owner("SAN-02") is None  # the config decides, nothing recorded
    assert c.convert(*message("gw-b", "SAN-03")).lines
    assert c.convert(*message("gw-a", "SAN-03")).rejected


def test_refusals_are_logged_once_per_gateway_and_station(tmp_path: Path, caplog) -> None:
    c = converter(Owners(tmp_path / "owners.jsonl"))
    c.convert(*message("gw-b"))
    for _ in range(3):
        c.convert(*message("gw-a"))
    alerts = [r for r in caplog.records if "ALERT" in r.getMessage()]
    assert len(alerts) == 1
    assert "watershed station move SAN-02 --to gw-a" in alerts[0].getMessage()


@pytest.mark.parametrize("line", [b"[]", b'{"station":"SAN 1","gateway":"g","at":1,"by":"x"}',
                                  b'{"station":"S","gateway":"g","at":"1","by":"x"}'])
def test_bad_records_are_skipped(tmp_path: Path, line: bytes) -> None:
    path = tmp_path / "owners.jsonl"
    path.write_bytes(line + b"\n")
    owners = Owners(path)
    owners.load()
    assert owners.all() == []


def test_station_move_command_records_and_refuses_config_owned(tmp_path: Path, capsys) -> None:
    from watershed.cli import main

    config = tmp_path / "ingest.toml"
    config.write_text(f'[ingest]\ndeadletter_file = "{tmp_path}/deadletter.jsonl"\n'
                      '[[stations]]\nid = "SAN-01"\ngateways = ["gw-a"]\n')
    Owners(tmp_path / "owners.jsonl").claim("SAN-02", "gw-b")
    assert main(["station", "move", "SAN-02", "--to", "gw-c", "--config", str(config),
                 "--by", "alice"]) == 0
    assert "moved from gw-b to gw-c" in capsys.readouterr().out
    assert main(["station", "owners", "--config", str(config), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["station"], record["gateway"], record["by"]) == ("SAN-02", "gw-c",
                                                                    "move:alice")
    assert main(["station", "move", "SAN-01", "--to", "gw-c", "--config", str(config)]) == 2
    assert "change them there" in capsys.readouterr().err
