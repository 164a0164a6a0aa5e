"""Unattended operation: sd_notify over a real unix datagram socket, the watchdog fed only
while the loops go round, logfmt logs, and the systemd unit verified by systemd itself."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from watershed.logs import LogfmtFormatter
from watershed.notify import SystemdNotifier, watchdog_interval_s

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "gateway" / "watershed-gateway.service"


@pytest.fixture
def notify_socket(tmp_path: Path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(10)
    yield path, sock
    sock.close()


def test_notifier_sends_datagrams_to_the_socket(notify_socket, monkeypatch) -> None:
    path, sock = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    notifier = SystemdNotifier()
    assert notifier.notify("READY=1", "STATUS=running")
    assert sock.recv(4096) == b"READY=1\nSTATUS=running"
    notifier.close()


def test_notifier_without_systemd_does_nothing(monkeypatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not SystemdNotifier().notify("READY=1")


def test_watchdog_interval_is_half_the_timeout_for_this_process(monkeypatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "180000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval_s() == 90.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval_s() is None


def test_logfmt_lines_quote_and_carry_extra_fields() -> None:
    record = logging.makeLogRecord({"name": "watershed.gateway.store", "levelno": 30,
                                    "levelname": "WARNING", "msg": 'shed %d "old" rows',
                                    "args": (3,), "station": "SAN-01"})
    line = LogfmtFormatter().format(record)
    assert line == ('level=warning logger=watershed.gateway.store msg="shed 3 \\"old\\" rows"'
                    " station=SAN-01")


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    text = UNIT.read_text()
    for needed in ("Type=notify", "WatchdogSec=", "Restart=always", "ExecReload=",
                   "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert needed in text
    # verify checks that ExecStart exists: point it at this checkout's installed command.
    installed = Path(sys.executable).parent / "watershed"
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("/opt/watershed/.venv/bin/watershed", str(installed)))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "watershed-gateway.service" not in result.stderr, result.stderr  # no warnings


def test_the_example_config_is_valid(tmp_path: Path) -> None:
    """With the certificates deploy/watershed-pki.sh makes for it (CN = its gateway id)."""
    from watershed.gateway.config import load_config
    example = REPO / "deploy" / "gateway" / "gateway.example.toml"
    pki = tmp_path / "pki"
    for args in (["ca"], ["client", "gw-zamora"]):
        subprocess.run([str(REPO / "deploy" / "watershed-pki.sh"), str(pki), *args], check=True,
                       capture_output=True, timeout=60)
    config_path = tmp_path / "gateway.toml"
    config_path.write_text(example.read_text().replace("/etc/watershed/", f"{pki}/"))
    config = load_config(config_path)
    assert config.mqtt.tls and config.stations[0].alerts
    assert config.mqtt.cert_file == f"{pki}/gw-zamora.crt"
