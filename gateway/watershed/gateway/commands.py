"""Gateway operators' subcommands of ``watershed`` (beyond ``watershed gateway``)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add this area's subcommands to the ``watershed`` parser (none yet)."""
