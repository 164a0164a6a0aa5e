"""What an operator installs for the ingest: the systemd unit verifies and the example config
loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from watershed.ingest.config import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "ingest"
UNIT = DEPLOY / "watershed-ingest.service"


def test_the_ingest_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    text = UNIT.read_text()
    for needed in ("Restart=always", "RestartPreventExitStatus=2", "NoNewPrivileges=yes"):
        assert needed in text
    # verify checks that ExecStart exists: point it at this checkout's installed command.
    installed = Path(sys.executable).parent / "watershed"
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("/opt/watershed/.venv/bin/watershed", str(installed)))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert UNIT.name not in result.stderr, result.stderr  # no warnings about the unit


def test_the_example_config_loads_with_the_credentials_the_unit_hands_over(
        tmp_path: Path, monkeypatch) -> None:
    """The secrets are not in the config: systemd puts each LoadCredential= of the unit in
    $CREDENTIALS_DIRECTORY, where the config's password_file names find them."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for line in UNIT.read_text().splitlines():
        if line.startswith("LoadCredential="):
            name = line.split("=", 1)[1].split(":", 1)[0]
            (credentials / name).write_text(f"secret of {name}\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config = load_config(DEPLOY / "ingest.toml")
    assert config.influx.api in ("v1", "v2")
    assert config.mqtt.password == "secret of ingest-mqtt-password"
    assert config.influx.password == "secret of ingest-influx-password"
    assert "secret" not in repr(config)
    assert config.mqtt.username == config.ingest.id  # the broker's client id
