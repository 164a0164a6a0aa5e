"""The README's hydrologist section works verbatim: each command of its shell block runs, in a
folder holding ingest.toml and stations.toml, on a record that went through the pipeline."""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from watershed.cli import main

from .hydro_record import Record, record

pytestmark = pytest.mark.integration
__all__ = ["record"]
README = Path(__file__).resolve().parents[2] / "README.md"


def hydrologist_commands() -> list[str]:
    section = README.read_text().split("## For hydrologists")[1].split("\n## ")[0]
    [block] = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line for line in block.splitlines() if line.strip()]


def test_every_command_of_the_section_runs(record: Record, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    commands = hydrologist_commands()
    assert len(commands) >= 8 and all(c.startswith("watershed ") for c in commands)
    monkeypatch.chdir(record.config.parent)  # holds ingest.toml and stations.toml
    outputs = []
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, (command, capsys.readouterr())
        outputs.append(capsys.readouterr().out)
    assert "spike" in outputs[0] and "SAN-01.2" in outputs[0]
    assert outputs[1].splitlines()[0].split()[-3:] == ["agg", "count", "missing"]
    assert " sum " in outputs[1]
    assert (Path("hydrograph.png").read_bytes()[:4] == b"\x89PNG")
    assert ET.parse("SAN-01.xml").getroot().tag.endswith("Collection")
    assert "latitude: -3.9702" in Path("SAN-01.rdb").read_text()
    assert "COMPLETE: 0 slots unaccounted for" in outputs[6]
    assert "sensor fouled" in outputs[-1]
