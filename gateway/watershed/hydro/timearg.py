"""Times on the command line: Unix seconds, or ISO 8601 (a date or date-time; UTC unless it
says otherwise)."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone


def unix_time(text: str) -> int:
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected Unix seconds or ISO 8601 such as 2025-11-20T00:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp())
