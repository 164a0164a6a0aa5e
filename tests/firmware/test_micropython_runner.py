"""The MicroPython runner fixture really runs the unix port, with the heap and path asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.micropython import FIRMWARE_DIR, MicroPythonRunner

pytestmark = pytest.mark.firmware


def test_code_runs_in_micropython(micropython: MicroPythonRunner) -> None:
    result = micropython.run("import sys; print(sys.implementation.name)")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "micropython\n"


def test_script_gets_its_arguments(micropython: MicroPythonRunner, tmp_path: Path) -> None:
    script = tmp_path / "echo_args.py"
    script.write_text("import sys\nprint(sys.argv[1:])\n")

    result = micropython.run(script=script, args=["one", tmp_path])

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"['one', '{tmp_path}']\n"


def test_stdin_is_fed_to_the_process(micropython: MicroPythonRunner) -> None:
    result = micropython.run("import sys; print(sys.stdin.read().upper())", stdin="reading\n")

    assert result.stdout == "READING\n\n"


ALLOCATE_100_KB = """
try:
    block = bytearray(100 * 1024)
    print("allocated")
except MemoryError:
    print("MemoryError")
"""


def test_default_heap_is_48k_and_enforced(micropython: MicroPythonRunner) -> None:
    assert micropython.run(ALLOCATE_100_KB).stdout == "MemoryError\n"


def test_larger_heap_is_honoured(micropython: MicroPythonRunner) -> None:
    assert micropython.run(ALLOCATE_100_KB, heap="256K").stdout == "allocated\n"


def test_firmware_dir_is_on_the_default_path(micropython: MicroPythonRunner) -> None:
    result = micropython.run("import sys; print(sys.path)")

    assert repr(str(FIRMWARE_DIR)) in result.stdout


def test_modules_import_from_the_given_path(micropython: MicroPythonRunner, tmp_path: Path) -> None:
    library = tmp_path / "lib"
    library.mkdir()
    (library / "gauge.py").write_text("LEVEL_MM = 1234\n")
    importer = "import gauge; print(gauge.LEVEL_MM)"

    found = micropython.run(importer, path=[library])
    not_on_path = micropython.run(importer, path=[])

    assert found.stdout == "1234\n", found.stderr
    assert not_on_path.returncode != 0
    assert "ImportError" in not_on_path.stderr


def test_started_process_runs_until_terminated(micropython: MicroPythonRunner) -> None:
    process = micropython.start("import time\nprint('ready')\nwhile True:\n    time.sleep(1)\n")
    assert process.stdout is not None

    assert process.stdout.readline() == "ready\n"
    assert process.poll() is None

    micropython.terminate_all()
    assert process.poll() is not None
