"""The gateway's alarms judged on observations built here (each condition made to hold, then
not), the clock seam, the local alert command, and the config and start-up errors an operator
meets: a missing TLS file named, exit code 2."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from watershed.gateway.alarms import (DISK_FREE, GATEWAY_CLOCK, LINK_ERRORS, NO_CONFIRMATION,
                                      STATION_CLOCK, STATION_SILENT, STORE_QUOTA, AlarmMonitor,
                                      Observations, judge)
from watershed.gateway.alert_commands import AlertCommands
from watershed.gateway.clock_sync import ClockSync, kernel_clock_synchronised, probe_for
from watershed.gateway.config import AlarmConfig, GatewayConfig, load_config
from watershed.gateway.daemon import EXIT_CONFIG, run
from watershed.gateway.store import Store

CONFIG = AlarmConfig()
QUIET = Observations(now=10_000.0, disk_free_bytes=10**10, store_used_bytes=1000,
                     quota_bytes=10**6, clock_synchronised=True,
                     stations={"SAN-01": (9_990.0, 5.0, 1.0, 1.0)}, unconfirmed=0,
                     last_confirmation_at=None, started_at=0.0)


def kinds(seen: Observations) -> set[tuple[str, str | None]]:
    return {(a.kind, a.station) for a in judge(CONFIG, seen)}


def with_station(**changes: object) -> Observations:
    last, poll, offset, quality = QUIET.stations["SAN-01"]
    values = {"last": last, "poll": poll, "offset": offset, "quality": quality, **changes}
    return Observations(**{**QUIET.__dict__, "stations": {"SAN-01": (
        values["last"], values["poll"], values["offset"], values["quality"])}})


def test_nothing_holds_when_all_is_well() -> None:
    assert kinds(QUIET) == set()


@pytest.mark.parametrize("seen, expected", [
    (Observations(**{**QUIET.__dict__, "disk_free_bytes": 1000}), (DISK_FREE, None)),
    (Observations(**{**QUIET.__dict__, "store_used_bytes": 810_000}), (STORE_QUOTA, None)),
    (Observations(**{**QUIET.__dict__, "clock_synchronised": False}), (GATEWAY_CLOCK, None)),
    (with_station(last=10_000.0 - 61), (STATION_SILENT, "SAN-01")),
    (with_station(last=None), (STATION_SILENT, "SAN-01")),  # never heard since the start
    (with_station(offset=-31.0), (STATION_CLOCK, "SAN-01")),
    (with_station(quality=0.4), (LINK_ERRORS, "SAN-01")),
    (Observations(**{**QUIET.__dict__, "unconfirmed": 5, "last_confirmation_at": 10_000.0
                     - 3601}), (NO_CONFIRMATION, None)),
])
def test_each_condition_raises_its_alarm(seen: Observations, expected: tuple) -> None:
    assert kinds(seen) == {expected}


def test_limits_themselves_raise_nothing() -> None:
    assert kinds(with_station(last=10_000.0 - 60, offset=30.0, quality=0.5)) == set()
    # Nothing waits unconfirmed: a quiet ingest is no alarm.
    assert kinds(Observations(**{**QUIET.__dict__, "last_confirmation_at": 1.0})) == set()
    assert kinds(Observations(**{**QUIET.__dict__, "quota_bytes": None,
                                 "store_used_bytes": 10**12})) == set()


def test_an_alarm_is_raised_once_and_cleared_once(tmp_path: Path) -> None:
    seen = {"obs": QUIET}
    config = GatewayConfig(id="gw-test")
    with Store(tmp_path / "g.db") as store:
        monitor = AlarmMonitor(config, store, lambda: seen["obs"])
        assert monitor.evaluate() == []
        seen["obs"] = Observations(**{**QUIET.__dict__, "disk_free_bytes": 5})
        [(state, alarm)] = monitor.evaluate()
        assert (state, alarm.kind) == ("raised", DISK_FREE)
        assert monitor.evaluate() == []  # still holding: no repeat
        assert [a["alarm"] for a in monitor.active()] == [DISK_FREE]
        seen["obs"] = QUIET
        [(state, alarm)] = monitor.evaluate()
        assert (state, alarm.kind) == ("cleared", DISK_FREE) and monitor.active() == []
        payloads = [payload for _, station, payload in store.unsent_alerts(10)]
        assert [station for _, station, _ in store.unsent_alerts(10)] == ["_gateway"] * 2
        assert ['"state":"raised"' in payloads[0], '"state":"cleared"' in payloads[1]] == [True,
                                                                                        True]


def test_the_clock_seam_and_the_kernel(caplog: pytest.LogCaptureFixture) -> None:
    answers = iter([False, False, True, None])
    sync = ClockSync(lambda: next(answers), "test")
    with caplog.at_level(logging.INFO, logger="watershed.gateway.clock_sync"):
        assert [sync.synchronised() for _ in range(4)] == [False, False, True, False]
    changes = [r.getMessage() for r in caplog.records]
    assert len(changes) == 3 and "cannot tell" in changes[2]  # logged only when it changes
    assert probe_for("assume-synchronised")() is True
    assert kernel_clock_synchronised() in (True, False)  # Linux answers, whatever the state
    with pytest.raises(ValueError):
        probe_for("gps")


def test_a_failing_alert_command_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                           ) -> None:
    commands = AlertCommands(timeout_s=10)
    with caplog.at_level(logging.INFO, logger="watershed.gateway.alert_commands"):
        commands.run(["sh", "-c", "echo modem not answering >&2; exit 3"], "{}", "flood",
                     "raised")
        commands.run([str(tmp_path / "no-such-command")], "{}", "disk_free", "raised")
        commands.run(["sh", "-c", "test \"$WATERSHED_ALERT\" = '{\"a\":1}'"], '{"a":1}',
                     "disk_free", "cleared")
        commands.wait()
    assert commands.stats == {"failed": 2, "ran": 1}
    text = caplog.text
    assert "exited with 3: modem not answering" in text and "no-such-command" in text


def test_alarm_keys_are_read_and_checked() -> None:
    base = {"gateway": {"id": "gw-1"}, "link": [{"port": "loop://", "stations": [1]}]}
    config = GatewayConfig.from_dict({**base, "alarms": {"silent_polls": 3, "command": ["x"]}})
    assert config.alarms.silent_polls == 3 and config.alarms.command == ("x",)
    assert config.time_source == "system" and config.metrics_port == 0
    with pytest.raises(Exception) as e:
        GatewayConfig.from_dict({**base, "alarms": {"silent_pols": 3}})
    assert "alarms.silent_pols" in str(e.value)
    with pytest.raises(Exception) as e:
        GatewayConfig.from_dict({**base, "gateway": {"id": "gw-1", "time_source": "gps"}})
    assert "gateway.time_source" in str(e.value)


def test_a_missing_tls_file_is_named_and_exits_with_the_config_code(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(f'[gateway]\nid = "gw-1"\nstore = "{tmp_path}/g.db"\n'
                    f'[mqtt]\ntls = true\nca_file = "{tmp_path}/missing-ca.pem"\n'
                    '[[link]]\nport = "loop://"\nstations = [1]\n')
    assert load_config(path).mqtt.ca_file.endswith("missing-ca.pem")  # it parses
    with caplog.at_level(logging.ERROR):
        assert run(path) == EXIT_CONFIG
    assert "mqtt.ca_file: cannot read the TLS file" in caplog.text
    assert "missing-ca.pem" in caplog.text and "store" not in caplog.text
    assert not (tmp_path / "g.db").exists()
