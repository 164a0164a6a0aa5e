"""Wire codec: wire bytes per reading, and frames per second encoded and decoded, for the
gateway's codec (CPython) and the firmware's (MicroPython unix port)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from watershed.contracts import wire
from watershed.contracts.wire import Reading
from tests.fixtures.micropython import FIRMWARE_DIR
from watershed.firmware_build import compile_firmware
from watershed_sim.micropython import micropython_binary

T0 = 1763676900


def typical_frame(n: int = 8) -> wire.Data:
    """A station's usual DATA: stage, water temperature and battery at 15-min steps."""
    readings = []
    for i in range(n):
        channel, text = [(1, "+1.234"), (3, "+14.52"), (32, "+12.81")][i % 3]
        readings.append(Reading.from_text(1000 + i, channel, T0 + 900 * (i // 3), text))
    return wire.Data(5, tuple(readings))


def rate(fn, seconds: float = 1.0) -> float:
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(200):
            fn()
        count += 200
    return count / elapsed


MICROPYTHON_BENCH = """
import time, wire
readings = %r
frame, n, _ = wire.encode_data(5, readings)
dec = wire.Decoder()
poll = %r
def timed(fn, count):
    t = time.ticks_us()
    for _ in range(count):
        fn()
    return count * 1000000 // max(1, time.ticks_diff(time.ticks_us(), t))
print(timed(lambda: wire.encode_data(5, readings), 2000))
def decode():
    for _ in dec.feed(poll):
        pass
print(timed(decode, 2000))
"""


def micropython_rates(frame: wire.Data) -> dict[str, int]:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        mpy = compile_firmware(Path(tmp) / "fw", FIRMWARE_DIR)
        readings = [(r.seq, r.channel, r.time, r.mantissa, r.exponent, r.flags)
                    for r in frame.readings]
        poll = wire.encode_frame(wire.Poll(5, wire.WANT_DATA, 0))
        out = subprocess.run([str(micropython_binary()), "-X", "heapsize=48K", "-c",
                              MICROPYTHON_BENCH % (readings, poll)],
                             env={"MICROPYPATH": str(mpy)}, capture_output=True, text=True,
                             check=True, timeout=120).stdout.split()
    return {"micropython_data_encode_frames_per_s": int(out[0]),
            "micropython_poll_decode_frames_per_s": int(out[1])}


def run() -> dict:
    frame = typical_frame(8)
    encoded = wire.encode_frame(frame)
    decoder = wire.FrameDecoder()
    big = typical_frame(30)
    big_encoded = wire.encode_frame(big)
    figures = {
        "readings_per_typical_frame": len(frame.readings),
        "wire_bytes_per_reading_typical": round(len(encoded) / len(frame.readings), 2),
        "wire_bytes_per_reading_30": round(len(big_encoded) / len(big.readings), 2),
        "target_wire_bytes_per_reading": 12,
        "cpython_encode_frames_per_s": round(rate(lambda: wire.encode_frame(frame))),
        "cpython_decode_frames_per_s": round(rate(lambda: list(decoder.feed(encoded)))),
    }
    figures["cpython_decode_readings_per_s"] = (figures["cpython_decode_frames_per_s"]
                                                * len(frame.readings))
    figures.update(micropython_rates(frame))
    return figures
