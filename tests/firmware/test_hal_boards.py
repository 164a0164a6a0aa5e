"""The ESP32 and RP2040 board modules: they compile with mpy-cross, type-check against their own
stubs (tests/firmware/test_typecheck.py runs mypy on hal_esp32 with the esp32 stubs and hal_rp2
with the rp2 stubs) and offer everything the unix board offers, with the same parameters, so
the code above the HAL runs unchanged on every board. Read with ast: ``machine`` is not needed.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.micropython import FIRMWARE_DIR
from watershed.firmware_build import mpy_cross

pytestmark = pytest.mark.firmware

BOARDS = ("hal_esp32", "hal_rp2")
# the classes of hal_unix whose objects the code above the HAL holds (Board and what it returns;
# its I2C and ADC are machine.I2C and machine.ADC themselves on a board)
SHARED_CLASSES = ("Board", "Clock", "Uart", "Sdi12Port", "Pin")


def classes(module: str) -> dict[str, ast.ClassDef]:
    """The module's classes; for a board module built on the boards' shared module (mcu.py),
    also mcu's classes under the names it imports them by and, where it defines none of that
    name, under their own (its Board, an mcu.Board, hands out mcu's Uart, Clock …)."""
    tree = ast.parse((FIRMWARE_DIR / (module + ".py")).read_text())
    found = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "mcu":
            shared = classes("mcu")
            for alias in node.names:
                if alias.name in shared:
                    found.setdefault(alias.asname or alias.name, shared[alias.name])
            for name, cls in shared.items():
                found.setdefault(name, cls)
    return found


def public_api(module: str, name: str) -> dict[str, tuple[tuple[str, ...], int] | None]:
    """Public methods (parameter names, number of defaults) and attributes of class ``name``,
    its bases in the same module included: class attributes and ``self.x = …`` in __init__."""
    found = classes(module)
    api: dict[str, tuple[tuple[str, ...], int] | None] = {}
    cls: ast.ClassDef | None = found[name]
    while cls is not None:
        for node in cls.body:
            if isinstance(node, ast.FunctionDef):
                if not node.name.startswith("_"):
                    params = tuple(a.arg for a in node.args.args[1:])
                    api.setdefault(node.name, (params, len(node.args.defaults)))
                if node.name == "__init__":
                    for stmt in ast.walk(node):
                        if (isinstance(stmt, ast.Assign)
                                and isinstance(target := stmt.targets[0], ast.Attribute)
                                and isinstance(target.value, ast.Name)
                                and target.value.id == "self"
                                and not target.attr.startswith("_")):
                            api.setdefault(target.attr, None)
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name) and not t.id.startswith("_"):
                        api.setdefault(t.id, None)
        bases = [b.id for b in cls.bases if isinstance(b, ast.Name) and b.id in found]
        cls = found[bases[0]] if bases else None
    return api


@pytest.mark.parametrize("board", BOARDS)
def test_board_module_compiles_with_mpy_cross(board: str, tmp_path: Path) -> None:
    out = tmp_path / (board + ".mpy")
    result = subprocess.run([mpy_cross(), "-o", str(out), "-s", board + ".py",
                             str(FIRMWARE_DIR / (board + ".py"))],
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:1] == b"M"


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("name", SHARED_CLASSES)
def test_board_offers_everything_the_unix_board_does(board: str, name: str) -> None:
    unix = public_api("hal_unix", name)
    ours = public_api(board, name)

    missing = sorted(set(unix) - set(ours))
    assert not missing, "%s.%s lacks %s" % (board, name, missing)
    for member, signature in unix.items():
        if signature is not None:
            assert ours[member] == signature, "%s.%s.%s" % (board, name, member)


@pytest.mark.parametrize("name", SHARED_CLASSES)
def test_the_shared_board_base_is_the_whole_api(name: str) -> None:
    # mcu.Board is the Board API itself: all of it but the name, which each board sets
    unix = public_api("hal_unix", name)
    shared = public_api("mcu", name)

    assert sorted(set(unix) - set(shared) - {"name"}) == []
    for member, signature in unix.items():
        if signature is not None:
            assert shared[member] == signature, "mcu.%s.%s" % (name, member)


@pytest.mark.parametrize("board", BOARDS)
def test_each_board_extends_the_shared_base(board: str) -> None:
    bases = classes(board)["Board"].bases
    assert len(bases) == 1 and isinstance(bases[0], ast.Name)
    assert ast.dump(classes(board)[bases[0].id]) == ast.dump(classes("mcu")["Board"])


def test_the_api_reader_sees_the_unix_board() -> None:
    api = public_api("hal_unix", "Board")

    assert api["i2c"] == (("bus", "scl", "sda", "freq"), 4)
    assert {"clock", "data_dir", "name", "sleep_ms", "lightsleep", "run_irqs",
            "feed_watchdog", "persistent_dir", "reset_cause", "free_heap"} <= set(api)
    assert {"send_break", "drain", "readinto", "write"} <= set(public_api("hal_unix",
                                                                           "Sdi12Port"))


@pytest.mark.parametrize("board,module", [("esp32", "hal_esp32"), ("rp2", "hal_rp2")])
def test_board_is_named_as_station_loads_it(board: str, module: str) -> None:
    # config.board (at boot) imports "hal_" + the config's board name and builds its Board
    tree = classes(module)["Board"]
    names = [node for node in tree.body if isinstance(node, ast.Assign)
             and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "name"]
    assert len(names) == 1 and isinstance(names[0].value, ast.Constant)
    assert names[0].value.value == board
