"""The `watershed` console script: every subcommand has help, bad usage exits 2."""

import subprocess
import sys
from pathlib import Path

import pytest

import watershed
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


def test_quarantine_of_a_store_that_is_not_there_is_one_line_naming_it(tmp_path: Path,
                                                                         capsys) -> None:
    missing = tmp_path / "gateway.db"

    code = main(["gateway", "quarantine", "list", "--store", str(missing)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [f"error: no gateway store at {missing}"]
    assert not missing.exists()


# Run before anything else in a subprocess: makes ``watershed_sim`` absent, as on a gateway or
# an ingest host where only the watershed package is installed.
WITHOUT_SIM = """
import sys

class NoSimulator:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "watershed_sim":
            raise ModuleNotFoundError(f"No module named {name!r}", name="watershed_sim")
        return None

sys.meta_path.insert(0, NoSimulator())
"""
PACKAGED_RATING = Path(watershed.__file__).parent / "data" / "usgs_01594440_rating_base.rdb"
NON_SIM_COMMANDS = ["gateway", "ingest", "rating table", "rating discharge", "recompute",
                    "influx setup", "influx downsample", "query", "firmware build"]


def run_without_sim(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT_SIM + code, *args],
                          capture_output=True, text=True, timeout=120)


def watershed_without_sim(*args: str) -> subprocess.CompletedProcess[str]:
    return run_without_sim("from watershed.cli import main; sys.exit(main(sys.argv[1:]))", *args)


def test_the_block_really_hides_the_simulator() -> None:
    result = run_without_sim("import watershed_sim")
    assert result.returncode == 1 and "No module named 'watershed_sim'" in result.stderr


def test_without_the_simulator_the_cli_starts_and_lists_no_sim_command() -> None:
    result = watershed_without_sim("--help")
    assert result.returncode == 0, result.stderr
    commands = result.stdout.split("COMMAND\n", 1)[1].split("options:")[0].split()
    assert {"gateway", "ingest", "rating", "recompute", "influx", "query", "firmware"} <= set(
        commands)
    assert "demo" not in commands and "sim" not in commands


def test_with_the_simulator_installed_its_commands_are_there() -> None:
    names = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert {"demo", "sim"} <= names


def test_every_package_module_outside_the_simulator_imports_without_it() -> None:
    code = """
import importlib, pkgutil, watershed
names = [m.name for m in pkgutil.walk_packages(watershed.__path__, "watershed.")]
for name in names:
    importlib.import_module(name)
print(len(names), "modules")
"""
    result = run_without_sim(code)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[0]) > 40


@pytest.mark.parametrize("command", NON_SIM_COMMANDS)
def test_every_non_sim_command_has_help_without_the_simulator(command: str) -> None:
    result = watershed_without_sim(*command.split(), "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: watershed " + command in result.stdout


def test_a_hydrologist_tool_runs_without_the_simulator() -> None:
    result = watershed_without_sim("rating", "discharge", str(PACKAGED_RATING), "4.0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# rating ")
    stage, _shift, discharge, _flag = result.stdout.splitlines()[-1].split("\t")
    assert stage == "4.0" and float(discharge) > 0


def test_firmware_build_without_the_simulator_compiles_the_packaged_firmware(
        tmp_path: Path) -> None:
    result = watershed_without_sim("firmware", "build", "--out", str(tmp_path / "fw"))
    assert result.returncode == 0, result.stderr
    source = Path(watershed.__file__).parent / "firmware"
    modules = {p.relative_to(source).with_suffix(".mpy") for p in source.rglob("*.py")}
    built = {p.relative_to(tmp_path / "fw") for p in (tmp_path / "fw").rglob("*.mpy")}
    assert Path("station.mpy") in modules and Path("drivers/sdi12.mpy") in modules
    assert built == modules
    assert (tmp_path / "fw" / "station.mpy").read_bytes()[:1] == b"M"  # the .mpy header


def test_the_packaged_firmware_is_the_repository_firmware() -> None:
    packaged = Path(watershed.__file__).parent / "firmware"
    repository = Path(__file__).resolve().parents[2] / "firmware"
    assert packaged.resolve() == repository.resolve()


def test_firmware_build_from_an_explicit_folder(tmp_path: Path, capsys) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "station.py").write_text("X = 1\n")
    assert main(["firmware", "build", "--firmware-dir", str(source),
                 "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "station.mpy").read_bytes()[:1] == b"M"


def test_firmware_build_from_a_folder_without_firmware_says_so(tmp_path: Path, capsys) -> None:
    assert main(["firmware", "build", "--firmware-dir", str(tmp_path),
                 "--out", str(tmp_path / "out")]) == 2
    assert f"{tmp_path}: no station firmware here" in capsys.readouterr().err


def test_firmware_build_reports_a_module_that_does_not_compile(tmp_path: Path, capsys) -> None:
    (tmp_path / "station.py").write_text("def broken(:\n")
    assert main(["firmware", "build", "--firmware-dir", str(tmp_path),
                 "--out", str(tmp_path / "out")]) == 1
    assert "mpy-cross failed" in capsys.readouterr().err
