"""One ``watershed NOUN ACTION`` group that several areas add actions to.

``watershed station`` has the technician's actions (check, flash, dump: station_tools) and the
ingest operator's (owners, move: ingest/commands.py); argparse allows one parser per name, so
the first area to ask makes it and the others add to it.
"""

from __future__ import annotations

import argparse
from typing import Any


HELP = {
    "station": "one station: check, flash, dump (technician); owners, move (ingest operator)",
}


def actions_of(sub: "argparse._SubParsersAction[Any]", noun: str) -> "argparse._SubParsersAction[Any]":
    """The ACTION subparsers of ``watershed NOUN``, made on first use."""
    parser = sub.choices.get(noun)
    if parser is None:
        parser = sub.add_parser(noun, help=HELP[noun], description=HELP[noun])
        parser.set_defaults(**{_KEY: parser.add_subparsers(
            dest=f"{noun}_command", required=True, metavar="ACTION")})
    actions: "argparse._SubParsersAction[Any]" = parser.get_default(_KEY)
    return actions


_KEY = "_actions_of_group"
