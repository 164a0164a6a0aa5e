"""The gateway in a process of its own (hardware/watershed_sim/gateway_host.py): it reads the
harness's time from shared memory (clock.SharedTime) exactly as the harness holds it, and a
gateway that cannot start says why in the harness. Scenarios run it whole
(tests/integration/test_sim_*.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from watershed_sim.clock import HarnessClock, SharedTime
from watershed_sim.gateway_host import GatewayProcess

EPOCH = 1_000_000  # s
SPEED = 100


def test_another_mapping_reads_the_time_and_the_links_clock_the_harness_holds(
        tmp_path: Path) -> None:
    clock = HarnessClock(EPOCH, SPEED, tmp_path / "clock", step_s=60)
    reader = SharedTime(clock.time_map.path, SPEED)
    try:
        assert reader.now() == EPOCH
        clock.release()  # the run's end: wall time moves the links' clock
        time.sleep(0.05)
        assert abs(reader.link_monotonic() - clock.link_monotonic()) < 0.01
        assert reader.link_monotonic() > EPOCH / SPEED + 0.04
    finally:
        reader.close()
        clock.stop()


def test_a_reader_never_takes_a_time_half_written(tmp_path: Path) -> None:
    writer = SharedTime(tmp_path / "time.map", SPEED, create=True)
    reader = SharedTime(tmp_path / "time.map", SPEED)
    done = threading.Event()

    def write() -> None:
        n = 0
        while not done.is_set():
            n += 1
            writer.write(n * 1000, float(n), None)  # always ms == 1000 × undriven s

    thread = threading.Thread(target=write)
    thread.start()
    seen: list[tuple[int, float, float | None]] = []
    times: set[int] = set()
    try:
        # until the writer has written while it read (it runs when the reader lets go of the
        # interpreter lock, so a count of reads alone may all fall before it starts)
        while len(times) < 100 and len(seen) < 10_000_000:
            seen.append(reader.read())
            times.add(seen[-1][0])
    finally:
        done.set()
        thread.join()
        reader.close()
        writer.close()
    assert all(ms == undriven * 1000 and since is None for ms, undriven, since in seen)
    assert len(times) > 1  # it read while the writer wrote


def test_a_gateway_that_cannot_start_says_why_in_the_harness(tmp_path: Path) -> None:
    clock = HarnessClock(EPOCH, SPEED, tmp_path / "clock", step_s=60)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be\n")
    config = {"gateway": {"id": "gw-test", "store": str(blocker / "gateway.db"),
                          "time_source": "assume-synchronised",
                          "health_file": str(tmp_path / "health.json")},
              "mqtt": {"host": "127.0.0.1", "port": 1},
              "link": [{"port": "/dev/null", "baud": 9600, "stations": [1]}],
              "station": [{"id": "S-01", "address": 1, "basin": "b"}]}
    gateway = GatewayProcess(config, clock)
    try:
        with pytest.raises(RuntimeError, match="gateway process: start failed: ") as failed:
            gateway.start()
        assert "gateway.db" in str(failed.value) or "not-a-folder" in str(failed.value)
    finally:
        gateway.stop()
        clock.stop()
