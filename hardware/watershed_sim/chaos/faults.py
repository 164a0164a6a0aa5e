"""The seeded fault schedule and the threads that carry it out.

Each target (gateway, ingest, broker, influxd, disk) has its own thread, running its faults in
order: break, hold for ``hold_s``, mend. Targets overlap (the broker may be down while the
gateway restarts), as they would in the field; one target's faults never do. The schedule
(which faults, when, for how long) comes from the seed alone; when they really happen depends
on the machine, which the verdict never looks at.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# kind -> (low, high) seconds it is held broken
HOLD_S = {
    "gateway_kill": (0.1, 1.5),
    "ingest_kill": (0.1, 2.0),
    "broker_kill": (0.2, 2.0),
    "influxd_pause": (4.0, 10.0),  # SIGSTOP .. SIGCONT
    "influxd_kill": (0.5, 2.0),
    "disk_full": (2.0, 5.0),
}


TARGET = {"influxd_pause": "influxd", "influxd_kill": "influxd"}  # else the kind is the target


@dataclass(frozen=True)
class Fault:
    at_s: float  # after the run's start
    kind: str
    hold_s: float


def schedule(seed: int, duration_s: float, counts: dict[str, int]) -> list[Fault]:
    """``counts[kind]`` faults of each kind, spread over the first 85 % of ``duration_s``: each
    kind's in its own equal slices, at a seeded place in each."""
    rng = random.Random(seed)
    faults = []
    for kind in sorted(counts):
        n = counts[kind]
        low, high = HOLD_S[kind]
        for i in range(n):
            slot = duration_s * 0.85 / n
            faults.append(Fault(round(slot * (i + rng.uniform(0.1, 0.9)), 2), kind,
                                round(rng.uniform(low, high), 2)))
    return sorted(faults, key=lambda f: (f.at_s, f.kind))


@dataclass(frozen=True)
class Action:
    """How to break and mend one kind of fault."""
    breaks: Callable[[], object]
    mends: Callable[[], object]


class FaultRunner:
    def __init__(self, faults: list[Fault], actions: dict[str, Action]) -> None:
        self.faults = faults
        self.actions = actions
        self.done: Counter[str] = Counter()  # faults carried out, per kind
        self.failures: list[str] = []  # a fault that could not be broken or mended
        self._stop = threading.Event()
        targets = sorted({TARGET.get(f.kind, f.kind) for f in faults})
        self._threads = [threading.Thread(target=self._run, args=(target,),
                                          name=f"chaos-{target}", daemon=True)
                         for target in targets]

    def start(self) -> None:
        self._started = time.monotonic()
        for thread in self._threads:
            thread.start()

    def wait(self) -> None:
        """Until every fault is carried out and mended."""
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join()

    def stop(self) -> None:
        self._stop.set()
        self.wait()

    def _run(self, target: str) -> None:
        for fault in (f for f in self.faults if TARGET.get(f.kind, f.kind) == target):
            kind = fault.kind
            action = self.actions[kind]
            if self._stop.wait(max(0.0, self._started + fault.at_s - time.monotonic())):
                return
            log.info("chaos: %s for %.1f s", kind, fault.hold_s)
            try:
                action.breaks()
            except Exception as e:
                self.failures.append(f"{kind} at {fault.at_s} s: break failed: {e!r}")
                log.exception("chaos: %s failed", kind)
                continue
            time.sleep(fault.hold_s)  # always mended, even when stopping
            for attempt in range(5):
                try:
                    action.mends()
                    break
                except Exception as e:
                    log.warning("chaos: mending %s failed (%r); again", kind, e)
                    time.sleep(1.0)
            else:
                self.failures.append(f"{kind} at {fault.at_s} s: could not be mended")
            self.done[kind] += 1
