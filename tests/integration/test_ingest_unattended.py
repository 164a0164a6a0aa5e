"""The ingest run as systemd runs it: READY=1 and WATCHDOG=1 on a real notify socket, logfmt
lines like the gateway's, and Prometheus metrics on a loopback port, against real mosquitto and
influxd."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from watershed.devservers import free_port

from .test_ingest_service import (  # noqa: F401 (fixtures)
    VECTOR,
    VECTOR_MESSAGE,
    Setup,
    setup,
    wait_for,
    write_cli_config,
)


def ingest_with_metrics(setup: Setup, tmp_path: Path, port: int, **env: str
                        ) -> subprocess.Popen:
    """``watershed ingest`` as its own process, serving metrics on 127.0.0.1:``port``."""
    c = setup.config
    config_path = write_cli_config(tmp_path / "ingest.toml", c.ingest.id, setup,
                                   c.ingest.deadletter_file, c.influx.url)
    config_path.write_text(config_path.read_text().replace(
        "[mqtt]", f"metrics_port = {port}\n[mqtt]", 1))
    code = "import sys; from watershed.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, "ingest", "--config",
                             str(config_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env})


def test_the_ingest_notifies_systemd_logs_logfmt_and_serves_metrics(setup: Setup,
                                                                     tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock_path = str(tmp_path / "notify.sock")
    sock.bind(sock_path)
    sock.settimeout(20)
    port = free_port()
    process = ingest_with_metrics(setup, tmp_path, port, NOTIFY_SOCKET=sock_path,
                                  WATCHDOG_USEC="400000")
    try:
        messages = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("WATCHDOG=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
        assert messages[0].startswith("READY=1")
        assert any("WATCHDOG=1" in m for m in messages)

        def written() -> bool:
            setup.publish(VECTOR["payload"].encode())
            return len(setup.rows()) == len(VECTOR_MESSAGE.readings)
        wait_for(written, what="points written")

        def scrape() -> str:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10
                                          ).read().decode()
        wait_for(lambda: "watershed_ingest_points_written_total" in scrape()
                 and "watershed_ingest_points_written_total 0.0" not in scrape(),
                 what="points written in the metrics")
        assert "watershed_ingest_connected 1.0" in scrape()
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        out, _ = process.communicate()
        lines = [line for line in out.splitlines() if line]
        assert lines and all(line.startswith("level=") for line in lines), lines[:3]
        assert any("logger=watershed.ingest.service" in line for line in lines)
    finally:
        process.kill()
        process.communicate()
        sock.close()
