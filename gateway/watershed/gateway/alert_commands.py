"""Run a local command for an alert or an alarm: an SMS through a GSM modem (smstools'
``smssend``), a siren on a GPIO. The uplink that carries alerts to MQTT may be the thing that is
down; a command configured on a flood rule (``[[station.alert]] command``) or on the alarms
(``[alarms] command``) still reaches someone.

The command is an argv list (no shell). It gets the alert's JSON on stdin and in
``WATERSHED_ALERT``, with ``WATERSHED_ALERT_KIND`` (``flood``, an alarm's name, ``store_full``)
and ``WATERSHED_ALERT_STATE`` (``raised`` or ``cleared``). It runs on a thread of its own, at
most ``COMMAND_TIMEOUT_S``, so a hung modem never holds up polling; a command that fails or times
out is logged with its exit status and the end of its output, and counted.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections import Counter
from collections.abc import Sequence

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 60.0
_OUTPUT_TAIL = 300  # characters of a failed command's output that go into the log


class AlertCommands:
    """Starts alert commands in the background; ``stats`` counts them; ``wait`` for tests."""

    def __init__(self, timeout_s: float = COMMAND_TIMEOUT_S) -> None:
        self._timeout_s = timeout_s
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.stats: Counter[str] = Counter()

    def run(self, argv: Sequence[str], payload: str, kind: str, state: str) -> None:
        if not argv:
            return
        thread = threading.Thread(target=self._run, args=(tuple(argv), payload, kind, state),
                                  name=f"alert command {argv[0]}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def wait(self, timeout_s: float = 30.0) -> None:
        """Until every command started so far has ended (tests, and a clean stop)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout_s)

    def _run(self, argv: tuple[str, ...], payload: str, kind: str, state: str) -> None:
        env = {**os.environ, "WATERSHED_ALERT": payload, "WATERSHED_ALERT_KIND": kind,
               "WATERSHED_ALERT_STATE": state}
        try:
            done = subprocess.run(argv, input=payload, env=env, capture_output=True, text=True,
                                  timeout=self._timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.stats["failed"] += 1
            log.error("alert command %s for %s %s failed: %s", argv[0], kind, state, e)
            return
        if done.returncode != 0:
            self.stats["failed"] += 1
            output = (done.stderr or done.stdout).strip()[-_OUTPUT_TAIL:]
            log.error("alert command %s for %s %s exited with %d: %s", argv[0], kind, state,
                      done.returncode, output)
            return
        self.stats["ran"] += 1
        log.info("alert command %s ran for %s %s", argv[0], kind, state)
