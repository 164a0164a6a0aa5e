"""One station registry (deploy/stations.toml) the gateway and the ingest configs point toward
(``registry = "stations.toml"``): a gateway's [[station]] takes its basin from it and an ingest's
[[stations]] its owners, so neither is written twice; a station the registry lacks, a basin or
owners that disagree, and a bad registry are refused with file and line; configs without the
key work as before."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from watershed.gateway.config import ConfigError, load_config as load_gateway
from watershed.hydro.cli_common import source
from watershed.ingest.config import load_config as load_ingest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
REGISTRY = """[[basin]]
id = "santiago"

[[station]]
id = "SAN-01"
basin = "santiago"
gateways = ["gw-zamora"]

[[station]]
id = "SAN-02"
basin = "santiago"
gateways = ["gw-zamora", "gw-loja"]
"""
GATEWAY = """[gateway]
id = "gw-zamora"
store = "gw.db"
registry = "stations.toml"

[[link]]
port = "loop://"
stations = [1, 2]

[[station]]
id = "SAN-01"
address = 1
{extra}"""
INGEST = """[ingest]
id = "ingest-1"
registry = "stations.toml"

[[stations]]
id = "SAN-01"
ratings = ["san01.toml"]
{extra}"""


def files(tmp_path: Path, gateway_extra: str = "", ingest_extra: str = "",
          registry: str = REGISTRY) -> tuple[Path, Path]:
    (tmp_path / "stations.toml").write_text(registry)
    gateway, ingest = tmp_path / "gateway.toml", tmp_path / "ingest.toml"
    gateway.write_text(GATEWAY.format(extra=gateway_extra))
    ingest.write_text(INGEST.format(extra=ingest_extra))
    return gateway, ingest


def problems(load, path: Path) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as e:
        load(path)
    return str(e.value)


def test_the_gateway_takes_the_basin_and_the_ingest_the_owners_from_the_registry(
        tmp_path: Path) -> None:
    gateway, ingest = files(tmp_path)
    assert load_gateway(gateway).station("SAN-01").basin == "santiago"  # type: ignore[union-attr]
    config = load_ingest(ingest)
    owners = {s.id: s.gateways for s in config.stations}
    # SAN-02 has no [[stations]] table: the registry registers it
    assert owners == {"SAN-01": ("gw-zamora",), "SAN-02": ("gw-zamora", "gw-loja")}
    assert config.station("SAN-01").ratings == (tmp_path / "san01.toml",)  # type: ignore[union-attr]
    assert config.ingest.registry == str(tmp_path / "stations.toml")


def test_a_station_the_registry_lacks_or_a_disagreement_is_refused_with_file_and_line(
        tmp_path: Path) -> None:
    gateway, ingest = files(tmp_path, 'basin = "catamayo"\n\n[[station]]\nid = "SAN-09"\n'
                                      'address = 2\nbasin = "santiago"\n',
                            'gateways = ["gw-loja"]\n\n[[stations]]\nid = "SAN-09"\n')
    text = problems(load_gateway, gateway)
    assert (f"{gateway}:13: station[0].basin: 'catamayo' differs from the registry's "
            f"'santiago'") in text, text
    assert (f"{gateway}:16: station[1].id: 'SAN-09' is not in the station registry "
            f"(gateway.registry); known: SAN-01, SAN-02") in text, text
    other = tmp_path / "other.toml"  # a gateway the registry does not give SAN-01 to
    other.write_text(GATEWAY.format(extra="").replace('id = "gw-zamora"', 'id = "gw-loja"'))
    text = problems(load_gateway, other)
    assert ("other.toml:11: station[0].id: the station registry gives 'SAN-01' to gw-zamora, "
            "not to 'gw-loja'") in text, text
    text = problems(load_ingest, ingest)
    assert (f"{ingest}:8: stations[0].gateways: ['gw-loja'] differs from the registry's "
            f"['gw-zamora']") in text, text
    assert f"{ingest}:11: stations[1].id: 'SAN-09' is not in the station registry" in text


def test_a_bad_registry_is_named_with_its_own_file_and_line(tmp_path: Path) -> None:
    gateway, ingest = files(tmp_path, registry=REGISTRY + 'owner = "x"\n')
    registry = tmp_path / "stations.toml"
    for load, path, line in ((load_gateway, gateway, 4), (load_ingest, ingest, 3)):
        text = problems(load, path)
        assert f"{path}:{line}: " in text and "registry: the station registry cannot be used: " \
            f"{registry}:13: station[1].owner: unknown key" in text, text
    (tmp_path / "gateway.toml").write_text(GATEWAY.format(extra="").replace(
        "stations.toml", "nowhere.toml"))
    assert "nowhere.toml: cannot read" in problems(load_gateway, gateway)


def test_configs_without_a_registry_work_as_before(tmp_path: Path) -> None:
    gateway = load_gateway(DEPLOY / "gateway" / "gateway.example.toml")
    assert gateway.station("SAN-01").basin == "santiago"  # type: ignore[union-attr]
    ingest = tmp_path / "ingest.toml"
    ingest.write_text(INGEST.format(extra="").replace('registry = "stations.toml"\n', ""))
    config = load_ingest(ingest)
    assert config.ingest.registry == "" and [(s.id, s.gateways) for s in config.stations] == [
        ("SAN-01", ())]


def test_the_hydrologists_commands_read_the_registry_the_ingest_config_names(
        tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "registry.toml").write_text(REGISTRY)
    ingest = tmp_path / "ingest.toml"
    ingest.write_text(INGEST.format(extra="").replace("stations.toml",
                                                      "elsewhere/registry.toml"))
    args = argparse.Namespace(config=ingest, registry=None, rp="")
    assert set(source(args).registry.stations) == {"SAN-01", "SAN-02"}
