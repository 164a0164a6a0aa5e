"""Which line of a TOML document each key is on, for errors that name file and line.

tomllib reports lines only for syntax errors; a scenario's semantic errors (an unknown sensor
source, an address out of range) must point at a line too. This scans the text for table
headers and ``key =`` lines and maps key paths such as ``("station", 1, "sensor", 0, "pin")``
to 1-based line numbers. Arrays of tables are numbered as tomllib numbers them. Keys inside
inline tables or multi-line arrays map to the line of the key that holds them.
"""

from __future__ import annotations

import re

KeyPath = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _parts(dotted: str) -> list[str]:
    return [p.strip().strip("\"'") for p in re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", dotted)]


def key_lines(text: str) -> dict[KeyPath, int]:
    lines: dict[KeyPath, int] = {}
    counts: dict[KeyPath, int] = {}  # arrays of tables: how many elements so far
    table: KeyPath = ()
    in_multiline_string = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.count('"""') % 2 or line.count("'''") % 2:
            in_multiline_string = not in_multiline_string
            if not in_multiline_string:
                continue
        if in_multiline_string:
            continue
        header = _HEADER.match(line)
        if header:
            table = _resolve(_parts(header.group(2)), counts)
            if header.group(1) == "[[":
                index = counts.get(table, 0)
                counts[table] = index + 1
                table = (*table, index)
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((*table, *_parts(key.group(1))), number)
    return lines


def _resolve(parts: list[str], counts: dict[KeyPath, int]) -> KeyPath:
    """A header's key path, with the latest index of each array of tables it passes through."""
    path: KeyPath = ()
    for i, part in enumerate(parts):
        path = (*path, part)
        if i < len(parts) - 1 and path in counts:
            path = (*path, counts[path] - 1)
    return path


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of ``path``, or of the nearest enclosing key that has one."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None
