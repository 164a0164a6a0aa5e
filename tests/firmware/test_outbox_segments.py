"""firmware/outbox.py in the MicroPython unix port (48 KB heap): append-only segments with a CRC
per record, ACKs, backfill, a flash budget, and damage found at boot (issue 3, item 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.micropython import MicroPythonRunner
from tests.firmware.test_outbox_crash import firmware  # noqa: F401 (fixture)

pytestmark = pytest.mark.firmware

REC = 24
SEG = 8  # records a segment


def run(micropython: MicroPythonRunner, fw: Path, data: Path, body: str,
        budget: int = SEG * REC * 12) -> dict:
    """Open the outbox on ``data``, run ``body`` (with ``o`` the outbox), print its state."""
    code = (
        "import json\nfrom outbox import Outbox\n"
        f"o = Outbox({str(data)!r}, {budget}, {SEG})\n"
        "out = {}\n"
        f"{body}\n"
        "o.seek()\n"
        "out.update(next_seq=o.next_seq, acked_below=o.acked_below, depth=o.depth(),\n"
        "           oldest=o.oldest_seq(), lost_o=o.lost_overwritten, lost_c=o.lost_corrupt,\n"
        "           segments=o.segments(), pending=[r[0] for r in o])\n"
        "o.close()\nprint(json.dumps(out))\n")
    result = micropython.run(code, path=[fw])
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def append(n: int) -> str:
    return f"for i in range({n}):\n    o.append(1, 1000 + i * 900, i, -3, 0)"


def segment_files(data: Path) -> list[Path]:
    return sorted(p for p in data.iterdir() if p.name.startswith("ob"))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "flash"
    d.mkdir()
    return d


def test_readings_stay_until_acked_and_acks_survive_a_restart(micropython, firmware, data):
    first = run(micropython, firmware, data, append(20) + "\no.ack(5, [(8, 10), (12, 13)])")
    assert first["pending"] == [5, 6, 7, 10, 11] + list(range(13, 21))
    assert first["depth"] == 13

    again = run(micropython, firmware, data, "")
    assert again["pending"] == first["pending"]
    assert again["next_seq"] == 21


def test_backfill_returns_held_readings_acked_or_not(micropython, firmware, data):
    out = run(micropython, firmware, data, append(12) + "\no.ack(10)\n"
              "o.seek(3, 12)\nout['backfill'] = list(o)")
    assert [r[0] for r in out["backfill"]] == list(range(3, 12))
    assert out["backfill"][0] == [3, 1, 1000 + 2 * 900, 2, -3, 0]
    assert out["oldest"] == 1


def test_no_record_is_ever_rewritten(micropython, firmware, data):
    run(micropython, firmware, data, append(30) + "\no.ack(10)")
    before = {p.name: p.read_bytes() for p in segment_files(data)}
    run(micropython, firmware, data, append(5) + "\no.ack(25, [(27, 29)])")
    for p in segment_files(data):
        if p.name in before:
            assert p.read_bytes().startswith(before[p.name]), f"{p.name} was rewritten"
    assert all(p.stat().st_size % REC == 0 for p in segment_files(data))


def test_full_budget_drops_the_oldest_segment_and_counts_unacked_losses(micropython, firmware,
                                                                         data):
    budget = SEG * REC * 4  # 3 segments
    out = run(micropython, firmware, data, append(10) + "\no.ack(6)\n" + append(40), budget)
    assert out["segments"] <= 3
    assert len(segment_files(data)) == out["segments"]
    held_from = out["oldest"]
    assert out["pending"] == list(range(held_from, 51))
    # Lost: every unacked reading below the oldest one still held (1-5 were acked).
    assert out["lost_o"] == held_from - 6
    assert run(micropython, firmware, data, "", budget)["lost_o"] == out["lost_o"]


def test_acked_readings_are_kept_until_space_is_needed(micropython, firmware, data):
    out = run(micropython, firmware, data, append(20) + "\no.ack(21)")
    assert out["depth"] == 0 and out["oldest"] == 1 and out["lost_o"] == 0


def test_torn_append_at_the_end_loses_nothing_and_no_seq_is_reused(micropython, firmware, data):
    run(micropython, firmware, data, append(5))
    newest = segment_files(data)[-1]
    with newest.open("ab") as f:
        f.write(b"\xa5\x01\x00\xfd\x06\x00")  # a power cut six bytes into seq 6's record

    out = run(micropython, firmware, data, append(1))
    assert out["lost_c"] == 0
    assert out["pending"] == [1, 2, 3, 4, 5, 6]
    assert len(segment_files(data)) == 2  # appends go to a fresh segment after a torn one


def test_a_corrupt_record_loses_that_reading_only_and_is_counted_once(micropython, firmware,
                                                                     data):
    run(micropython, firmware, data, append(30))
    second = segment_files(data)[1]
    raw = bytearray(second.read_bytes())
    raw[3 * REC + 12] ^= 0x10  # a bit flip in a reading's time
    second.write_bytes(bytes(raw))

    out = run(micropython, firmware, data, "")
    assert out["lost_c"] == 1
    assert len(out["pending"]) == 29 and out["depth"] == 29
    assert run(micropython, firmware, data, "")["lost_c"] == 1, "counted again at next boot"


def test_a_garbage_segment_loses_at_most_that_segment(micropython, firmware, data):
    run(micropython, firmware, data, append(40))
    victim = segment_files(data)[2]
    victim.write_bytes(b"\xff" * victim.stat().st_size)

    out = run(micropython, firmware, data, append(1))
    lost = 40 - (len(out["pending"]) - 1)
    assert 0 < lost <= SEG
    assert out["lost_c"] == lost
    assert out["pending"][-1] == 41


def test_damage_at_the_end_of_the_newest_segment_skips_seqs_rather_than_reuse_them(
        micropython, firmware, data):
    run(micropython, firmware, data, append(12))
    newest = segment_files(data)[-1]
    raw = bytearray(newest.read_bytes())
    for i in range(len(raw) - 2 * REC, len(raw)):
        raw[i] ^= 0x55  # the last two records
    newest.write_bytes(bytes(raw))

    out = run(micropython, firmware, data, append(1))
    # Readings 11 and 12 are gone; their seqs (and a segment's worth after) are not reused.
    assert out["lost_c"] == 2
    assert out["pending"][-2:] == [10, 11 + SEG]
