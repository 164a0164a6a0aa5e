"""One validator, and what it accepts builds (issue 14, deliverable 3).

Hypothesis mutates a valid unix-board config with every sensor kind (a value of any JSON type
set at any key, a key deleted, an unknown key added) and for each mutant asks the firmware's
validator (firmware/schema.py) under CPython and in MicroPython: both must find the same number
of defects, and every mutant it accepts must build a station in MicroPython on that very config
(not the last good one, not safe mode). One MicroPython process builds them all."""

from __future__ import annotations

import copy
import json
import queue
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.micropython import MicroPythonRunner, micropython_binary
from watershed.firmware_build import compile_firmware, mpy_cross
from watershed.station_tools.check import firmware_defects

pytestmark = pytest.mark.firmware

HERE = Path(__file__).parent
T0 = 1763676000


def base_config(root: Path) -> dict[str, Any]:
    for d in ("flash", "io"):
        (root / d).mkdir(exist_ok=True)
    for port in ("sdi12", "serial"):
        (root / port).write_bytes(b"")  # a file stands for the port: opened, never answering
    return {
        "station": "PROP-01", "address": 7, "basin": "santiago",
        "board": {"name": "unix", "data_dir": str(root / "flash"), "io_dir": str(root / "io"),
                  "sim_epoch": T0, "wall_epoch": T0, "speed": 1},
        "link": {"port": "unused", "baud": 9600},
        "clock_jump_s": 5,
        "channels": [
            {"sensor": "analog", "pin": 26, "channel": 1, "interval_s": 900, "event_s": 300,
             "burst": 5, "spread": 2, "scale_num": 5000, "scale_den": 65535, "exponent": -3,
             "samples": 1, "raw_min": 100, "raw_max": 65000},
            {"sensor": "rain", "pin": 27, "channel": 16, "interval_s": 300,
             "mm_per_tip_um": 200, "debounce_ms": 50},
            {"sensor": "sdi12", "port": str(root / "sdi12"), "address": "0", "measure": "M",
             "crc": True, "channels": [3, 0, 6], "shift": [0, 0, -3], "interval_s": 900,
             "retries": 2, "response_ms": 50},
            {"sensor": "serial_level", "port": str(root / "serial"), "mount_mm": 3500,
             "channel": 5, "range_channel": 7, "samples": 3, "interval_s": 900},
            {"sensor": "bme280", "bus": 0, "address": 118, "channels": [17, 18, 19],
             "oversampling": [1, 2, 4], "interval_s": 600},
            {"no": 32, "pin": 28, "interval_s": 3600, "scale_num": 13200, "scale_den": 65535,
             "exponent": -3},
        ],
        "quality": {"1": {"valid_min": 0, "valid_max": 4.5, "spike": 1.0, "flat_n": 20}},
        "event": {"stage": 1, "rise": 0.05, "rain": 16, "rain_mm": 4, "hold_s": 3600},
        "outbox": {"budget_bytes": 24576, "segment_records": 64},
    }


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path of ``node``, containers included."""
    if isinstance(node, dict):
        items: Any = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    for k, v in items:
        yield prefix + (k,)
        yield from paths(v, prefix + (k,))


VALUES = st.one_of(
    st.integers(-3, 300),
    st.sampled_from([0, 1, -1, 2, 15, 16, 255, 256, 4096, 65535, 65536, 86400, 86401, 10**18,
                     10**19, -10**19, 2**31]),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e20, max_value=1e20),
    st.sampled_from(["", "0", "a", "M", "C1", "R", "R0", "M10", "analog", "rain", "sdi12",
                     "bme280", "serial_level", "esp32", "unix", "60", "x" * 40]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(-25, 300), max_size=4),
    st.dictionaries(st.sampled_from(["1", "x", "tx", "valid_min"]), st.integers(0, 50),
                    max_size=2),
)


def near(old: Any) -> st.SearchStrategy[Any]:
    """Values of the old one's type near it: the edges a range check must hold."""
    if isinstance(old, bool):
        return st.booleans()
    if isinstance(old, int):
        return st.sampled_from([old - 1, old + 1, -old, 0, old * 1000, old // 2])
    if isinstance(old, float):
        return st.sampled_from([-old, 0.0, old * 1e6, int(old)])
    if isinstance(old, list) and old and isinstance(old[0], int):
        return st.lists(st.integers(-25, 300), min_size=len(old) - 1, max_size=len(old) + 1)
    return VALUES


@st.composite
def mutants(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    cfg = copy.deepcopy(base)
    every = sorted(paths(base), key=repr)
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(every))
        node = cfg
        try:
            for k in path[:-1]:
                node = node[k]
            op = draw(st.sampled_from(["set", "set", "delete", "unknown"]))
            if op == "set":
                old = node[path[-1]]
                node[path[-1]] = draw(st.one_of(VALUES, near(old), near(old)))
            elif op == "delete":
                del node[path[-1]]
            elif isinstance(node, dict):
                node[draw(st.sampled_from(["exponnent", "interval", "pins", "x"]))] = 1
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed or replaced that path
    return cfg


class Builder:
    """The MicroPython builder's stdin and its answers (read by a thread: a hang is a failure
    with its last lines, not a stuck test)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.log: list[str] = []
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("")  # the builder ended

    def ask(self, line: str) -> list[str]:
        assert self.process.stdin is not None
        self.log = []
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise AssertionError(f"the builder died after {line}") from None
        while True:
            try:
                out = self.lines.get(timeout=60)
            except queue.Empty:
                raise AssertionError(f"no answer to {line}: {self.log}") from None
            assert out, f"the builder stopped: {self.log}"
            if out[:2] in ("B ", "C ", "X "):
                return out.split()
            self.log.append(out)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config-property")


@pytest.fixture(scope="module")
def builder(root: Path) -> Iterator[Builder]:
    compiled = compile_firmware(root / "mpy")
    subprocess.run([mpy_cross(), "-o", str(compiled / "config_builder_mp.mpy"),
                    str(HERE / "config_builder_mp.py")], check=True)
    runner = MicroPythonRunner(micropython_binary(), root)
    # a roomy heap: hundreds of stations built one after another in one process
    process = runner.start(code="import config_builder_mp", path=[compiled], heap="1M",
                           stdin=subprocess.PIPE)
    yield Builder(process)
    runner.terminate_all()


COUNTS = {"accepted": 0, "refused": 0}


@settings(max_examples=250, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_config_the_validator_accepts_builds_in_micropython(data, builder, root):
    base = base_config(root)
    assert firmware_defects(base) == []
    cfg = data.draw(mutants(base))
    path = root / "config.json"
    path.write_text(json.dumps(cfg))
    for old in (root / "config.json.bak",):
        old.unlink(missing_ok=True)
    defects = firmware_defects(cfg)
    answer = builder.ask(f"check {path}")
    assert answer == ["C", str(len(defects))], (defects, builder.log)
    if defects:
        COUNTS["refused"] += 1
        return
    COUNTS["accepted"] += 1
    answer = builder.ask(f"build {path}")
    assert answer[:2] == ["B", "1"], (cfg, answer, builder.log)


def test_the_property_saw_both_kinds():
    """The mutants above were not all refused (nor all accepted): the property was tested."""
    print(COUNTS)
    assert COUNTS["accepted"] >= 25 and COUNTS["refused"] >= 25, COUNTS
