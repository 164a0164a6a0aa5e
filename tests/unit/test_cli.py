"""The `watershed` console script: every subcommand has help, bad usage exits 2."""

import subprocess
import sys

import pytest

from watershed.cli import build_parser, main

SUBCOMMANDS = ["gateway", "ingest", "demo", "firmware", "firmware build", "gateway quarantine",
               "gateway quarantine list", "gateway quarantine release",
               "gateway quarantine drop"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(command.split() + ["--help"])
    assert exit_.value.code == 0
    assert "usage: watershed " + command in capsys.readouterr().out


def test_gateway_without_config_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["gateway"])
    assert exit_.value.code == 2
    assert "--config" in capsys.readouterr().err


def test_console_script_is_installed_or_module_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "watershed.cli", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "demo" in result.stdout


def test_parser_lists_the_foundation_commands() -> None:
    names = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert {"gateway", "ingest", "demo", "firmware"} <= names
