"""What the gateway knows of the station at one bus address since the link opened (poller.py)."""

from __future__ import annotations

from dataclasses import dataclass

from .identity import Mismatch


@dataclass
class StationSession:
    station_id: str | None = None
    needs_hello: bool = True
    needs_time: bool = False  # set by a HELLO; cleared when the station answers TIME
    next_status_at: float = 0.0  # monotonic; 0: at the first poll
    next_backfill_at: float = 0.0
    dispute: Mismatch | None = None  # set: whoever answers here is in doubt; DATA quarantined
    clean_polls: int = 0  # polls of a shared address answered by the bound station alone
