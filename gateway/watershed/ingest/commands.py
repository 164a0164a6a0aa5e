"""Hydrologists' and ingest operators' subcommands of ``watershed`` (rating, query, influx, recompute)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add this area's subcommands to the ``watershed`` parser (none yet)."""
