"""The station's sampling engine and configuration (issue 3, items 3, 4, 7), each test running the
real firmware in the MicroPython unix port: quality flags at the source (valid range, spike,
flatline), burst sampling (median stored, spread on channel 2), a failed sensor giving MISSING
readings while the other channels go on, and a CONFIG pushed with the gateway's codec (applied
atomically and announced in HELLO, or rejected with a reason and the old config kept, across a
restart too); the technician's console on stdin (status, read, config, set, log) of the
station as station.main runs it.

tests/firmware/engine_mp.py drives the station step by step on a manual clock (deterministic:
no timing on the shared cores); the gateway's frames are made, and the station's decoded, by
the gateway's codec (watershed.contracts.wire)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.micropython import MicroPythonRunner
from tests.firmware.station_console import Console
from watershed.contracts import wire as gw
from watershed.firmware_build import compile_firmware, mpy_cross
from watershed_sim.serial_link import VirtualSerialLink

pytestmark = pytest.mark.firmware

HERE = Path(__file__).parent
T0 = 1763676000  # 2025-11-20T22:00:00Z
ADDR = 5
MISSING, OUT_OF_RANGE, SPIKE, FLATLINE = gw.MISSING, gw.OUT_OF_RANGE, gw.SPIKE, gw.FLATLINE
QUALITY = MISSING | OUT_OF_RANGE | gw.SUSPECT | SPIKE | FLATLINE
STAGE = {"sensor": "analog", "pin": 26, "channel": 1, "interval_s": 60, "exponent": -3,
         "samples": 1}  # value = count / 1000
BATTERY = {"sensor": "analog", "pin": 28, "channel": 32, "interval_s": 60, "exponent": -3,
           "samples": 1}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = compile_firmware(tmp_path_factory.mktemp("engine-mpy"))
    subprocess.run([mpy_cross(), "-o", str(out / "engine_mp.mpy"), str(HERE / "engine_mp.py")],
                   check=True)
    return out


def station_config(tmp_path: Path, channels: list[dict[str, Any]],
                   **extra: Any) -> dict[str, Any]:
    data, io = tmp_path / "flash", tmp_path / "io"
    data.mkdir(exist_ok=True)
    io.mkdir(exist_ok=True)
    return {"station": "ENG-01", "address": ADDR, "basin": "santiago",
            "board": {"name": "unix", "data_dir": str(data), "io_dir": str(io),
                      "sim_epoch": T0, "wall_epoch": T0, "speed": 1},
            "link": {"port": "unused"}, "clock_jump_s": 1000000000, "channels": channels,
            **extra}


class Run:
    """One run of engine_mp.py: the console lines, the readings and the station's frames."""

    def __init__(self, stdout: str) -> None:
        self.lines = stdout.splitlines()
        self.readings = [tuple(int(x) for x in line.split()[1:]) for line in self.lines
                         if line.startswith("R ")]
        decoder = gw.FrameDecoder()
        self.frames: list[Any] = []
        for line in self.lines:
            if line.startswith("W "):
                self.frames += list(decoder.feed(bytes.fromhex(line[2:])))
        steps = [line.split() for line in self.lines if line.startswith("S ")]
        self.sensor_errors = int(steps[-1][1])
        self.config_hash = int(steps[-1][2], 16)

    def channel(self, ch: int) -> list[tuple[int, ...]]:
        return [r for r in self.readings if r[1] == ch]

    def of(self, kind: type) -> list[Any]:
        return [f for f in self.frames if isinstance(f, kind)]


def run(micropython: MicroPythonRunner, compiled: Path, tmp_path: Path,
        steps: list[dict[str, Any]], cfg: dict[str, Any] | None = None) -> Run:
    """Run the steps on the station whose config is ``cfg`` (written to flash), or on the
    config already there (a restart)."""
    config = tmp_path / "config.json"
    if cfg is not None:
        config.write_text(json.dumps(cfg))
    (tmp_path / "steps.json").write_text(json.dumps(steps))
    result = micropython.run(code="import engine_mp", args=[config, tmp_path / "steps.json"],
                             path=[compiled], timeout=120)
    assert result.returncode == 0 and result.stdout.endswith("done\n"), (
        result.stdout[-3000:] + result.stderr)
    return Run(result.stdout)


def frames(*frames: gw.Frame) -> dict[str, str]:
    return {"frames": b"".join(gw.encode_frame(f) for f in frames).hex()}


def test_quality_flags_at_the_source(micropython, compiled, tmp_path):
    cfg = station_config(tmp_path, [STAGE], quality={
        "1": {"valid_min": 1.0, "valid_max": 3.0, "spike": 1.0, "flat_n": 3}})
    counts = [2000, 2100, 5000, 2150, 2150, 2150, 2150, 2160, 1900, 950]
    steps: list[dict[str, Any]] = []
    for c in counts:
        steps += [{"adc": {"26": [c]}}, {"cycles": 1}]
    out = run(micropython, compiled, tmp_path, steps, cfg)
    stage = out.channel(1)
    assert [r[3] for r in stage] == counts, "a flagged value is stored, never dropped"
    assert all(r[4] == -3 for r in stage)
    assert [r[5] & QUALITY for r in stage] == [
        0, 0,
        OUT_OF_RANGE | SPIKE,  # 5.0 > valid_max, and a jump of 2.9 > 1.0
        SPIKE,  # back down by 2.85
        0,
        FLATLINE, FLATLINE,  # the same value a third and a fourth time in a row
        0, 0,
        OUT_OF_RANGE,  # 0.95 < valid_min, a step of 0.95 is no spike
    ], stage
    assert all(r[5] & gw.CLOCK_UNSYNCED for r in stage), "no TIME yet"
    assert out.sensor_errors == 0


def test_burst_stores_the_median_and_the_spread_on_channel_2(micropython, compiled, tmp_path):
    cfg = station_config(tmp_path, [dict(STAGE, burst=5, spread=2),
                                    dict(STAGE, pin=27, channel=3, burst=4, spread=4)])
    steps: list[dict[str, Any]] = [
        {"adc": {"26": [2010, 2000, 2300, 1990, 2005], "27": [2000, 2010, 1990, 2030]}},
        {"cycles": 1},
    ]
    out = run(micropython, compiled, tmp_path, steps, cfg)
    # odd burst: the middle value; the spread max - min, in the same units
    assert [r[1:5] for r in out.readings if r[1] in (1, 2)] == [(1, T0 + 60, 2005, -3),
                                                               (2, T0 + 60, 310, -3)]
    # even burst: the mean of the middle two, exactly (one more decimal), the spread alike
    assert [r[1:5] for r in out.readings if r[1] in (3, 4)] == [(3, T0 + 60, 20050, -4),
                                                               (4, T0 + 60, 400, -4)]
    assert not any(r[5] & QUALITY for r in out.readings)


def test_a_failed_sensor_gives_missing_readings_and_the_others_go_on(micropython, compiled,
                                                                      tmp_path):
    cfg = station_config(tmp_path, [dict(STAGE, burst=3, spread=2), BATTERY])
    steps: list[dict[str, Any]] = [
        {"adc": {"26": [2000], "28": [12600]}}, {"cycles": 1},
        {"fail": [26]}, {"cycles": 2},  # the stage sensor stops answering
        {"fail": []}, {"adc": {"26": [2100]}}, {"cycles": 1},
    ]
    out = run(micropython, compiled, tmp_path, steps, cfg)
    stage, spread, battery = out.channel(1), out.channel(2), out.channel(32)
    assert [r[3:] for r in stage] == [(2000, -3, 0x08), (0, 0, MISSING | 0x08),
                                      (0, 0, MISSING | 0x08), (2100, -3, 0x08)]
    # the spread of a burst that could not be taken is missing too, never a 0
    assert [r[3:] for r in spread] == [(0, -3, 0x08), (0, 0, MISSING | 0x08),
                                       (0, 0, MISSING | 0x08), (0, -3, 0x08)]
    assert [r[3] for r in battery] == [12600] * 4, "the other channels go on"
    assert out.sensor_errors == 2
    assert any(line.startswith("E sensor 1 read failed") for line in out.lines)


def test_a_value_a_reading_cannot_carry_is_missing_and_out_of_range_never_another_number(
        micropython, compiled, tmp_path):
    # count 2000 * 1234567890123457 = 2469135780246914000e-3: a mantissa of 19 digits
    digits19 = dict(STAGE, scale_num=1234567890123457)
    # 2000 * 10**17: 21 digits (an exponent beyond 20 is a config defect: schema.py refuses it)
    digits21 = dict(STAGE, pin=27, channel=3, scale_num=10**17)
    cfg = station_config(tmp_path, [digits19, digits21, BATTERY])
    steps: list[dict[str, Any]] = [{"adc": {"26": [2000], "27": [2000], "28": [12600]}},
                                   {"cycles": 2}, frames(gw.Poll(ADDR, gw.WANT_DATA))]
    out = run(micropython, compiled, tmp_path, steps, cfg)
    unsynced = gw.CLOCK_UNSYNCED
    assert [r[3:] for r in out.channel(1)] == [(0, 0, MISSING | OUT_OF_RANGE | unsynced)] * 2
    assert [r[3:] for r in out.channel(3)] == [(0, 0, MISSING | OUT_OF_RANGE | unsynced)] * 2
    assert [r[3] for r in out.channel(32)] == [12600] * 2, "the other channels go on"
    assert [line for line in out.lines if " value out of range: " in line] == [
        "E sensor 1 value out of range: 2469135780246914000 e -3",
        "E sensor 3 value out of range: 200000000000000000000 e -3"] * 2
    sent = [r for f in out.of(gw.Data) for r in f.readings]
    assert len(sent) == 6, "the outbox holds nothing the codec refuses: every reading is sent"
    assert {(r.channel, r.value) for r in sent} == {(1, None), (3, None),
                                                    (32, Decimal("12.600"))}


# --- DATA in several frames (contracts 1.2) ------------------------------------------------


def test_a_poll_with_want_more_is_answered_with_up_to_four_frames_of_the_oldest_readings(
        micropython, compiled, tmp_path):
    three = [STAGE, dict(STAGE, pin=27, channel=3), BATTERY]
    cfg = station_config(tmp_path, three)
    more = gw.WANT_DATA | gw.WANT_MORE
    steps: list[dict[str, Any]] = [
        {"adc": {"26": [2000], "27": [1500], "28": [12600]}}, {"cycles": 50},  # 150 readings
        frames(gw.Poll(ADDR, gw.WANT_DATA)),  # one frame, as before 1.2
        frames(gw.Poll(ADDR, more)),
        frames(gw.Ack(ADDR, 121), gw.Poll(ADDR, more)),  # 30 left: one DATA
        frames(gw.Poll(ADDR, more, 0, (10, 110))),  # a backfill, acked or not: 100 readings
    ]
    out = run(micropython, compiled, tmp_path, steps, cfg)
    assert len(out.readings) == 150
    kinds = ["M" if isinstance(f, gw.DataMore) else "D" for f in out.of(gw.Data)]
    assert kinds == ["D", "M", "M", "M", "D", "D", "M", "M", "M", "D"]
    replies = wire_replies(out.of(gw.Data))
    assert [seqs(r) for r in replies] == [list(range(1, 31)), list(range(1, 121)),
                                          list(range(121, 151)), list(range(10, 110))]
    assert all(len(f.readings) == 30 for f in out.of(gw.Data)[1:4]), "each frame as full as before"
    stored = {r[0]: r for r in out.readings}
    assert all((r.channel, r.time, r.mantissa, r.exponent, r.flags) == stored[r.seq][1:]
               for reply in replies for r in reply.readings)


def wire_replies(datas: list[Any]) -> list[Any]:
    """The station's replies: each DATA_MORE chain and its DATA as one (the gateway's join)."""
    return [f for f in gw.joined(datas) if isinstance(f, gw.Data)]


def seqs(data: Any) -> list[int]:
    return [r.seq for r in data.readings]


# --- CONFIG (contracts 1.3) ------------------------------------------------------------------


def canonical(cfg: dict[str, Any]) -> bytes:
    """The bytes the gateway pushes (gateway/watershed/gateway/remote.py)."""
    return json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()


def config_frames(blob: bytes, config_hash: int | None = None, size: int = 200
                  ) -> dict[str, str]:
    """ConfigChunk frames of ``blob`` as the gateway's poller sends them, back to back."""
    h = gw.config_hash(blob) if config_hash is None else config_hash
    return frames(*(gw.ConfigChunk(ADDR, h, len(blob), off, blob[off:off + size])
                    for off in range(0, len(blob), size)))


HELLO = frames(gw.Poll(ADDR, gw.WANT_HELLO))


def test_a_config_pushed_by_the_gateway_is_applied_and_its_hash_is_in_hello(
        micropython, compiled, tmp_path):
    old = station_config(tmp_path, [STAGE])
    new = dict(old, channels=[dict(STAGE, interval_s=120), BATTERY],
               quality={"1": {"valid_max": 4.5, "spike": 0.25}})
    blob = canonical(new)
    assert len(blob) > 400, "several chunks"
    steps = [{"adc": {"26": [2000], "28": [12600]}}, {"cycles": 1}, HELLO,
             config_frames(blob), HELLO, {"cycles": 2}]
    out = run(micropython, compiled, tmp_path, steps, old)
    hellos = out.of(gw.Hello)
    assert hellos[0].config_hash == gw.config_hash(canonical(old))
    results = out.of(gw.Result)
    assert [(r.ref_type, r.status) for r in results] == [(gw.CONFIG, gw.RESULT_OK)], results
    assert hellos[-1].config_hash == gw.config_hash(blob), "the next HELLO carries the new hash"
    assert out.config_hash == gw.config_hash(blob)
    assert json.loads((tmp_path / "config.json").read_text()) == new
    assert json.loads((tmp_path / "config.json.bak").read_text()) == old
    assert not (tmp_path / "config.json.new").exists()
    assert out.channel(32), "the new channel samples"
    after = [r[2] for r in out.channel(1)][1:]
    assert after and all(t % 120 == 0 for t in after), "at its new interval"
    seqs = [r[0] for r in out.readings]
    assert seqs == list(range(1, len(seqs) + 1)), "the outbox goes on: no seq reused"

    again = run(micropython, compiled, tmp_path, [HELLO])  # a restart: still in force
    assert again.of(gw.Hello)[0].config_hash == gw.config_hash(blob)


def test_a_config_pushed_keeps_the_clock_synchronised(micropython, compiled, tmp_path):
    """Issue 14, item 5: the gateway's TIME stays in force across a new config: the readings
    after it are not flagged CLOCK_UNSYNCED."""
    old = station_config(tmp_path, [STAGE])
    new = dict(old, channels=[dict(STAGE, interval_s=120)])
    steps = [{"adc": {"26": [2000]}}, {"cycles": 1},
             frames(gw.TimeSync(ADDR, (T0 + 61) * 1000)), {"cycles": 1},
             config_frames(canonical(new)), {"cycles": 3},
             frames(gw.Poll(ADDR, gw.WANT_STATUS))]
    out = run(micropython, compiled, tmp_path, steps, old)
    assert [(r.ref_type, r.status) for r in out.of(gw.Result)] == [
        (gw.TIME, gw.RESULT_OK), (gw.CONFIG, gw.RESULT_OK)]
    flags = [r[5] for r in out.channel(1)]
    assert flags[0] & gw.CLOCK_UNSYNCED, "before the first TIME"
    assert len(flags) == 5 and not any(f & gw.CLOCK_UNSYNCED for f in flags[1:]), flags
    assert out.of(gw.Status)[0].state & gw.STATE_CLOCK_SYNCED


@pytest.mark.parametrize("defect, reason", [
    ("hash", "config_hash does not match"),
    ("interval", "config: channels.0.interval_s: must be a whole number 1 to 86400"),
    ("json", "config not in canonical form"),  # MicroPython's json takes it cut short
    ("spaces", "config not in canonical form"),
    ("address", "config: address: must be a whole number 1 to 254"),
])
def test_a_bad_config_is_rejected_with_a_reason_and_the_old_one_stays(
        micropython, compiled, tmp_path, defect, reason):
    old = station_config(tmp_path, [STAGE])
    old_text = json.dumps(old)
    bad: dict[str, Any] = dict(old, channels=[dict(STAGE, interval_s=120)])
    wrong_hash = None
    if defect == "hash":
        wrong_hash = gw.config_hash(canonical(bad)) ^ 1
    elif defect == "interval":
        bad["channels"] = [dict(STAGE, interval_s=0)]
    elif defect == "address":
        bad["address"] = 0
    blob = canonical(bad)
    if defect == "json":
        blob = blob[:-1]  # cut short
    elif defect == "spaces":
        blob = json.dumps(bad, sort_keys=True).encode()  # its hash would not be the HELLO's
    steps = [{"adc": {"26": [2000]}}, {"cycles": 1}, config_frames(blob, wrong_hash), HELLO,
             {"cycles": 2}]
    out = run(micropython, compiled, tmp_path, steps, old)
    results = out.of(gw.Result)
    assert [(r.ref_type, r.status, r.detail) for r in results] == [
        (gw.CONFIG, gw.RESULT_REJECTED, reason)], results
    old_hash = gw.config_hash(canonical(old))
    assert [h.config_hash for h in out.of(gw.Hello)] == [old_hash]
    assert (tmp_path / "config.json").read_text() == old_text, "the old config stays"
    assert not (tmp_path / "config.json.new").exists()
    assert [r[2] - T0 for r in out.channel(1)] == [60, 120, 180], "still at its old interval"
    assert any(line.startswith("E config rejected: " + reason) for line in out.lines)

    again = run(micropython, compiled, tmp_path, [HELLO])  # and after a restart
    assert again.of(gw.Hello)[0].config_hash == old_hash
    assert (tmp_path / "config.json").read_text() == old_text


def test_a_config_chunk_out_of_order_is_a_bad_request_and_nothing_changes(
        micropython, compiled, tmp_path):
    old = station_config(tmp_path, [STAGE])
    blob = canonical(dict(old, channels=[dict(STAGE, interval_s=120)]))
    h = gw.config_hash(blob)
    steps = [frames(gw.ConfigChunk(ADDR, h, len(blob), 0, blob[:100]),
                    gw.ConfigChunk(ADDR, h, len(blob), 200, blob[200:300])),  # 100..200 lost
             HELLO]
    out = run(micropython, compiled, tmp_path, steps, old)
    assert [(r.status, r.detail) for r in out.of(gw.Result)] == [
        (gw.RESULT_BAD_REQUEST, "chunk out of order")]
    assert out.of(gw.Hello)[0].config_hash == gw.config_hash(canonical(old))
    assert json.loads((tmp_path / "config.json").read_text()) == old


# --- the technician's console (issue 3, item 8) ----------------------------------------------


def test_the_technicians_console(micropython, compiled, tmp_path):
    cfg = station_config(tmp_path, [STAGE, BATTERY])
    cfg["board"].update(speed=60, wall_epoch=int(time.time()))  # a slot a second
    with VirtualSerialLink() as link:
        cfg["link"]["port"] = link.station_path
        (tmp_path / "io" / "adc26").write_text("2000\n")
        (tmp_path / "io" / "adc28").write_text("12600\n")
        config = tmp_path / "config.json"
        config.write_text(json.dumps(cfg))
        con = Console(micropython, compiled, config)
        con.wait_for(lambda line: line.startswith("R ") and line.split()[2] == "32")

        status = con.command("status")
        assert status[0].startswith("C clock ") and " synced 0 event 0" in status[0], status
        assert any(line.startswith("C outbox depth ") and line.endswith(" lost 0 0")
                   for line in status), status
        assert "C battery_mv 12600 sensor_errors 0" in status
        old_hash = gw.config_hash(canonical(cfg))
        assert f"C reset 1 boots 1 config {old_hash:08x} ok" in status
        assert any(line.startswith("C heap ") for line in status)
        # nothing due and nobody typing: the station slept between its samples
        [asleep] = [line.split() for line in status if line.startswith("C asleep_s ")]
        assert 0 < int(asleep[2]) <= int(asleep[4]) and int(asleep[2]) > int(asleep[4]) // 2, asleep
        last = {int(line.split()[2]): line.split()[3:] for line in status
                if line.startswith("C last ")}
        # names with their unit, ISO UTC times, exact values, flags by name
        assert last[1][0] == "stage_m" and last[1][2:] == ["2.000", "unsynced"], status
        assert last[32][0] == "battery_v" and last[32][2:] == ["12.600", "unsynced"], status
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", last[1][1]), status

        (tmp_path / "io" / "adc26").write_text("2345\n")
        assert sorted(con.command("read")) == ["C read 1 stage_m 2.345 ok",
                                               "C read 32 battery_v 12.600 ok"]

        dumped = con.command("dump")
        assert dumped[:2] == ["C dump station ENG-01",
                              "C seq,channel,name,time,unix_s,mantissa,exponent,value,flags"]
        rows = [line[2:].split(",") for line in dumped[2:]]
        assert rows and [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
        assert {(r[1], r[2], r[5], r[6], r[7]) for r in rows if r[1] == "32"} == {
            ("32", "battery_v", "12600", "-3", "12.600")}
        assert con.command("dump 2")[2].startswith("C 2,")

        # two-point calibration of the stage: 1.000 m at count 2345, 3.000 m at count 6345
        assert con.command("cal 1 1.000")[0].startswith("C cal 1 point 1: count 2345")
        (tmp_path / "io" / "adc26").write_text("6345\n")
        assert con.command("cal 1 3.000") == ["C cal 1 offset -172 scale 2000 / 4000"]
        con.wait_for(lambda line: line == "C set channels.0 calibration")
        calibrated = json.loads(config.read_text())["channels"][0]
        assert (calibrated["offset"], calibrated["scale_num"], calibrated["scale_den"]) == (
            -172, 2000, 4000)
        con.wait_for(lambda line: line.startswith("I config "))
        cfg = json.loads(config.read_text())
        assert sorted(con.command("read"))[0] == "C read 1 stage_m 3.000 ok"

        shown = con.command("config")
        assert len(shown) == 1 and json.loads(shown[0][len("C config "):]) == cfg

        assert con.command("set address 0") == []  # checked like a CONFIG frame: refused
        assert json.loads(config.read_text()) == cfg, "the old config stays"
        assert ("C log E config rejected: config: address: must be a whole number 1 to 254"
                in con.command("log"))

        # checked with the station torn down (the validator needs its heap), then answered
        assert con.command("set channels.0.interval_s 120") == []
        con.wait_for(lambda line: line == "C set channels.0.interval_s")
        new = json.loads(json.dumps(cfg))
        new["channels"][0]["interval_s"] = 120
        assert json.loads(config.read_text()) == new
        line = con.wait_for(lambda line: line.startswith("I config "))
        assert line == f"I config {gw.config_hash(canonical(new)):08x} in force"
        # the new interval is in force: the stage's next slots fall on even minutes
        stage = [con.wait_for(lambda line: line.startswith("R ") and line.split()[2] == "1")
                 for _ in range(2)]
        assert all(int(line.split()[3]) % 120 == 0 for line in stage), stage

        assert con.command("help")[0].startswith("C commands: ")
        con.process.terminate()
        con.process.wait(timeout=10)
