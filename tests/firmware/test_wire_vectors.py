"""firmware/wire.py in the MicroPython unix port: the contract's vectors, and its 48 KB budget."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from cobs import cobs

from tests.fixtures.micropython import (FIRMWARE_DIR, REPO_ROOT, MicroPythonRunner,
                                        micropython_binary)

pytestmark = pytest.mark.firmware

VECTORS = REPO_ROOT / "tests" / "vectors" / "wire_v1.json"
SCRIPT = Path(__file__).with_name("wire_vectors_mp.py")


def vector_ids() -> list[str]:
    doc = json.loads(VECTORS.read_text())
    return [f"{group}/{v['name']}" for group in ("valid", "invalid") for v in doc[group]]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str]]:
    """Runs the vector script once: (PASS or FAIL, group/name, why) for each line it prints."""
    runner = MicroPythonRunner(micropython_binary(), tmp_path_factory.mktemp("micropython-cwd"))
    # The vectors file is loaded whole, and wire.py is compiled from source: a larger heap.
    result = runner.run(script=SCRIPT, args=[VECTORS], heap="256K", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    *lines, done = result.stdout.splitlines()
    rows = []
    for line in lines:
        status, _, rest = line.partition(" ")
        name, _, why = rest.partition(": ")
        assert status in ("PASS", "FAIL"), line
        rows.append((status, name, why))
    assert done == f"DONE {len(rows)}"
    return rows


def test_every_vector_is_checked_once(report: list[tuple[str, str, str]]) -> None:
    assert [name for _, name, _ in report] == vector_ids()


@pytest.mark.parametrize("name", vector_ids())
def test_vector_passes_in_micropython(report: list[tuple[str, str, str]], name: str) -> None:
    results = {n: (status, why) for status, n, why in report}
    assert results[name] == ("PASS", "")


def mpy_cross_binary() -> Path:
    """As in test_mpy_cross.py: WATERSHED_MPY_CROSS, else the cache `make micropython` fills."""
    configured = os.environ.get("WATERSHED_MPY_CROSS")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("WATERSHED_CACHE", Path.home() / ".cache" / "watershed"))
    return cache / "micropython" / "mpy-cross"


# Runs at the firmware's 48 KB heap. Compiling wire.py from source needs more than that on the
# 64-bit unix port (about 60 KB), so it is imported compiled, as it is deployed.
BUDGET_CHECKS = r"""
import gc
gc.collect()
free_before_import = gc.mem_free()
import wire
gc.collect()

def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)

check("module holds under 16 KB of heap", free_before_import - gc.mem_free() < 16 * 1024)

for text, parts in ((b"+1.234", (1234, -3)), ("-0.50", (-50, -2)), ("+12", (12, 0)),
                    ("1.50", (150, -2)), ("999999999999999", (999999999999999, 0))):
    check("parse_decimal %r" % (text,), wire.parse_decimal(text) == parts)
for text in (b"", b"+", b"1.2.3", b"1e3", b" 1", b"nan", b"1000000000000000"):
    try:
        wire.parse_decimal(text)
        check("parse_decimal refuses %r" % (text,), False)
    except ValueError:
        check("parse_decimal refuses %r" % (text,), True)

import binascii
import crc32_soft
check("crc32_soft", crc32_soft.crc32(b"123456789") == binascii.crc32(b"123456789") == 0xCBF43926)

readings = [(1000 + i, 1, 1763676900 + 900 * i, 1234 + i, -3, 0) for i in range(60)]
view, n, _ = wire.encode_data(5, readings)
frame = bytes(view)
check("a frame is a view of the codec's buffer, not a new object", isinstance(view, memoryview))
check("data frame takes as many readings as fit", 20 < n < 60 and len(frame) <= 252)
check("data frame has one delimiter, at the end", frame.find(b"\x00") == len(frame) - 1)
echo = list(wire.Decoder().feed(frame))
check("a station recognises a DATA echo", echo == [(wire.DATA, 5, None)])

dec = wire.Decoder()
check("252 encoded bytes are not too long", list(dec.feed(b"\x01" * 252 + b"\x00")) == ["crc"])
check("253 encoded bytes are too long", list(dec.feed(b"\x01" * 253 + b"\x00")) == ["too_long"])

noise = bytes(range(1, 256)) * 4
ack = bytes.fromhex("09011105314185b5a800")
dec = wire.Decoder()
gc.collect()
allocated = gc.mem_alloc()
for _ in range(50):
    for item in dec.feed(noise):
        pass
    for item in dec.feed(b"\x00" + ack):
        pass
gc.collect()
check("decoding noise does not grow the heap", gc.mem_alloc() - allocated < 512)
check("noise counted as too_long", dec.errors["too_long"] == 50 and dec.frames == 50)
print("DONE")
"""


def test_codec_works_within_the_48k_heap(micropython: MicroPythonRunner, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("wire", "crc32_soft"):
        compiled = subprocess.run(
            [str(mpy_cross_binary()), "-o", str(lib / f"{name}.mpy"),
             str(FIRMWARE_DIR / f"{name}.py")], capture_output=True, text=True, timeout=60)
        assert compiled.returncode == 0, compiled.stderr

    result = micropython.run(BUDGET_CHECKS, path=[lib])

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "DONE"
    assert [line for line in lines if not line.startswith("PASS ")] == ["DONE"]


DECODE_LINES = """
import sys
import wire
for line in sys.stdin:
    print(repr(list(wire.Decoder().feed(bytes.fromhex(line.strip())))))
"""


def fuzzed_streams(count: int, seed: int) -> list[bytes]:
    """Vector frames, noise and CRC-valid random bodies, with bits flipped and bytes dropped."""
    rng = random.Random(seed)
    frames = [bytes.fromhex(v["wire"]) for v in json.loads(VECTORS.read_text())["valid"]]
    types = [0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x12, 0x13, 0x14, 0x7E]
    streams = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(0, 5)):
            pick = rng.random()
            if pick < 0.4:
                parts.append(rng.choice(frames))
            elif pick < 0.8:
                body = bytes([1, rng.choice(types), rng.randrange(256)]) + rng.randbytes(
                    rng.randint(0, 30))
                parts.append(cobs.encode(body + zlib.crc32(body).to_bytes(4, "little")) + b"\0")
            else:
                parts.append(rng.randbytes(rng.randint(0, 300)))
        data = bytearray(b"".join(parts))
        for _ in range(rng.randint(0, 2)):
            if data:
                i = rng.randrange(len(data))
                if rng.random() < 0.5:
                    data[i] ^= 1 << rng.randrange(8)
                else:
                    del data[i:i + rng.randint(1, 20)]
        streams.append(bytes(data))
    return streams


def test_micropython_decodes_fuzzed_streams_as_cpython_does(micropython: MicroPythonRunner) -> None:
    sys.path.insert(0, str(FIRMWARE_DIR))
    try:
        import wire  # firmware/wire.py under CPython, cross-checked with the reference there
    finally:
        sys.path.remove(str(FIRMWARE_DIR))
    streams = fuzzed_streams(400, seed=20251120)
    want = [repr(list(wire.Decoder().feed(s))) for s in streams]

    lines = "".join(s.hex() + "\n" for s in streams)
    result = micropython.run(DECODE_LINES, heap="256K", stdin=lines)

    assert result.returncode == 0, result.stderr
    got = result.stdout.splitlines()
    assert len(got) == len(streams)
    for stream, g, w in zip(streams, got, want):
        assert g == w, stream.hex()
