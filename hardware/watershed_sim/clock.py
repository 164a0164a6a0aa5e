"""Simulated time shared by the harness, the stations (hal_unix.Clock) and the gateway."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SimClock:
    """``speed`` times wall time, reading ``sim_epoch`` at wall time ``wall_epoch`` (Unix s)."""

    sim_epoch: int
    speed: int = 1
    wall_epoch: int = field(default_factory=lambda: int(time.time()))

    def now(self) -> float:
        return self.sim_epoch + (time.time() - self.wall_epoch) * self.speed

    def board_config(self) -> dict[str, int]:
        """The clock keys of a unix board's config (firmware/hal_unix.py)."""
        return {"sim_epoch": self.sim_epoch, "wall_epoch": self.wall_epoch, "speed": self.speed}

    def wall_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / self.speed
