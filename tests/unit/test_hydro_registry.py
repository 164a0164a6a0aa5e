"""The station metadata registry: the shipped example loads, mistakes are refused with file and
line, and flag names read both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from watershed.config_reader import ConfigError
from watershed.hydro.flags import flag_names, parse_flag_names
from watershed.hydro.registry import load_registry

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "stations.toml"


def test_the_shipped_registry_loads() -> None:
    registry = load_registry(DEPLOY)
    san01 = registry.station("SAN-01")
    assert san01 is not None and san01.channels["stage_m"] == 900
    assert registry.basin_of("SAN-01").timezone == "America/Guayaquil"
    assert registry.basin_of("NOPE").id == ""  # unknown: UTC, October


def test_mistakes_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "stations.toml"
    bad.write_text('[[basin]]\nid = "santiago"\ntimezone = "Mars/Olympus"\n\n'
                   '[[station]]\nid = "SAN-01"\nbasin = "santiago"\nlatitud = -3.9\n'
                   'channels = { stage_m = 0 }\n')
    with pytest.raises(ConfigError) as e:
        load_registry(bad)
    text = str(e.value)
    assert "Mars/Olympus" in text and "latitud" in text and "stage_m" in text


def test_flag_names() -> None:
    assert flag_names(0x90) == "spike|event"
    assert parse_flag_names("spike,suspect") == 0x14
    with pytest.raises(ValueError, match="unknown flag 'spiky'"):
        parse_flag_names("spiky")
