"""The outbox survives power loss at any instant: the MicroPython process is killed (SIGKILL)
at random points hundreds of times while it appends readings and applies ACKs, and after every
restart no unacknowledged reading is lost, no acknowledged one comes back as pending, and no
sequence number is reused (issue 3, item 5)."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.micropython import MicroPythonRunner
from watershed.firmware_build import compile_firmware

pytestmark = pytest.mark.firmware

DRIVER = Path(__file__).with_name("outbox_driver_mp.py")
SEGMENT_RECORDS = 8
BUDGET = SEGMENT_RECORDS * 24 * 12  # 11 segments: the ring turns many times in the test
KILLS = 300


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_firmware(tmp_path_factory.mktemp("firmware"))


def expected(seq: int) -> tuple[int, int, int, int, int]:
    """What the driver stores for ``seq``: channel, time, mantissa, exponent, flags."""
    return seq % 5 + 1, 1700000000 + seq * 60, seq * 7 - 1000, -3, seq & 0x7E


class Model:
    """What the test knows for sure of each sequence number the driver has used."""

    def __init__(self) -> None:
        self.state: dict[int, str] = {}  # seq -> "unacked" | "acked" | "maybe" (ack in flight)
        self.max_confirmed = 0
        self.lost_overwritten = 0
        self.next_seq_seen = 1

    def covered(self, words: list[str]) -> set[int]:
        cum = int(words[1])
        seqs = {s for s in self.state if s < cum}
        pairs = list(map(int, words[2:]))
        for f, e in zip(pairs[::2], pairs[1::2]):
            seqs |= {s for s in self.state if f <= s < e}
        return seqs

    def check_boot(self, status: list[int], held: dict[int, tuple[tuple[int, ...], bool]],
                   intended_append: int | None) -> None:
        next_seq, acked_below, oldest, depth, lost_o, lost_c, segments = status
        assert lost_c == 0, "a SIGKILL tears no record on this port: nothing may look corrupt"
        assert next_seq > self.max_confirmed, "a confirmed sequence number would be reused"
        assert next_seq >= self.next_seq_seen, "next_seq went backwards"
        assert lost_o >= self.lost_overwritten, "a loss counter went backwards"
        assert depth == sum(1 for _, pending in held.values() if pending)
        for seq, (content, pending) in held.items():
            assert content == expected(seq), f"seq {seq} came back changed"
            if seq not in self.state:
                # Only the append in flight at the kill may show up unconfirmed.
                assert seq == intended_append, f"seq {seq} was never appended"
                assert pending
        overwritten_unacked = 0
        for seq, state in self.state.items():
            pending = seq in held and held[seq][1]
            if state == "unacked" and not pending:
                assert seq < oldest, f"unacked seq {seq} lost (oldest held {oldest})"
                overwritten_unacked += 1
            if state == "acked":
                assert not pending, f"acked seq {seq} came back as pending"
        assert lost_o >= overwritten_unacked
        # Resolve what was uncertain, and forget what the ring dropped.
        for seq in list(self.state):
            if seq < oldest:
                del self.state[seq]
            elif self.state[seq] == "maybe":
                self.state[seq] = "unacked" if held.get(seq, (None, False))[1] else "acked"
        if intended_append is not None and intended_append in held:
            self.state[intended_append] = "unacked" if held[intended_append][1] else "acked"
            self.max_confirmed = max(self.max_confirmed, intended_append)
        self.lost_overwritten = lost_o
        self.next_seq_seen = next_seq


@pytest.mark.parametrize("append_odds", [150, 235], ids=["gateway_keeps_up", "ring_overflows"])
def test_outbox_survives_random_kills(micropython: MicroPythonRunner, firmware: Path,
                                      tmp_path: Path, record_property, append_odds: int) -> None:
    data = tmp_path / "flash"
    data.mkdir()
    rng = random.Random(20250603)
    model = Model()
    intended_append: int | None = None
    in_flight_ack: list[str] | None = None
    boots_checked = appends = acks = mid_operation = 0
    last_status: list[int] = []
    started = time.monotonic()
    for run in range(KILLS + 1):
        final = run == KILLS  # the last run is not killed: it only reports the state
        command = micropython.command(None, DRIVER, [data, BUDGET, SEGMENT_RECORDS, run,
                                                     0 if final else -1, append_odds], "48K")
        process = subprocess.Popen(command, env=micropython.environment([firmware]),
                                   cwd=micropython.cwd, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        # Lines to read before the kill: one run in ten is cut during the boot scan.
        in_boot = rng.random() < 0.1
        kill_after = rng.randint(0, 20) if in_boot else rng.randint(1, 60)
        status: list[int] | None = None
        held: dict[int, tuple[tuple[int, ...], bool]] = {}
        lines = 0
        killed = False
        try:
            for line in process.stdout:
                if not line.endswith("\n"):
                    break  # cut mid-line by the kill
                words = line.split()
                assert words and words[0] in "SHGaAkK", f"driver said: {line!r}"
                if words[0] == "S":
                    status = list(map(int, words[1:]))
                elif words[0] == "H":
                    values = tuple(map(int, words[1:]))
                    held[values[0]] = (values[1:6], bool(values[6]))
                elif words[0] == "G":
                    assert status is not None
                    model.check_boot(status, held, intended_append)
                    if in_flight_ack is not None:
                        in_flight_ack = None
                    intended_append = None
                    boots_checked += 1
                    last_status = status
                elif words[0] == "a":
                    intended_append = int(words[1])
                    assert intended_append > model.max_confirmed, "seq reused"
                elif words[0] == "A":
                    seq = int(words[1])
                    assert seq == intended_append
                    model.state[seq] = "unacked"
                    model.max_confirmed = seq
                    intended_append = None
                    appends += 1
                elif words[0] == "k":
                    in_flight_ack = words
                    for seq in model.covered(words):
                        if model.state[seq] == "unacked":
                            model.state[seq] = "maybe"
                elif words[0] == "K":
                    assert in_flight_ack is not None
                    for seq in model.covered(in_flight_ack):
                        model.state[seq] = "acked"
                    in_flight_ack = None
                    acks += 1
                if in_boot or boots_checked and words[0] != "H":
                    lines += 1
                if not final and lines >= kill_after and not killed:
                    if intended_append is not None or in_flight_ack is not None:
                        mid_operation += 1
                    # The power cut. What the driver printed before it is still in the pipe,
                    # and all of it happened: keep reading to the end.
                    process.kill()
                    killed = True
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            process.stdout.close()
        if final:
            assert process.returncode == 0
    elapsed = time.monotonic() - started
    assert boots_checked > KILLS * 0.8
    assert appends > 1000 and acks > 100
    names = ["next_seq", "acked_below", "oldest_seq", "outbox_depth", "lost_overwritten",
             "lost_corrupt", "segments"]
    summary = dict(zip(names, last_status))
    summary.update(kills=KILLS, appends_confirmed=appends, acks_confirmed=acks,
                   kills_seen_mid_operation=mid_operation,
                   seconds=round(elapsed, 1))
    record_property("outbox_crash", summary)
    print("outbox crash test:", summary)
    assert summary["lost_corrupt"] == 0
    if append_odds > 200:
        assert summary["lost_overwritten"] > 0, "the ring never overflowed"
