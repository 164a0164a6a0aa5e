"""Which line of a TOML document each key is on, for errors that name file and line.

tomllib reports lines only for syntax errors; a config's semantic errors (an unknown key, an
address out of range) must point at a line too. This scans the text for table headers and
``key =`` lines and maps key paths such as ``("station", 1, "sensor", 0, "pin")`` to 1-based
line numbers. Arrays of tables are numbered as tomllib numbers them. A value that runs over
several lines (a multi-line array or string) is skipped whole, so its insides are never taken
for headers or keys; keys inside inline tables and arrays map to the line of the key that holds
them.
"""

from __future__ import annotations

import re

KeyPath = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")


def _parts(dotted: str) -> list[str]:
    return [p.strip("\"'") for p in _PART.findall(dotted)]


def key_lines(text: str) -> dict[KeyPath, int]:
    lines: dict[KeyPath, int] = {}
    counts: dict[KeyPath, int] = {}  # arrays of tables: how many elements so far
    table: KeyPath = ()
    open_value = _OpenValue()
    for number, line in enumerate(text.splitlines(), 1):
        if open_value.continues():
            open_value.scan(line)
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
            open_value.scan(line[key.end():])
    return lines


def _resolve(parts: list[str], counts: dict[KeyPath, int]) -> KeyPath:
    """A header's key path, with the latest index of each array of tables it passes through."""
    path: KeyPath = ()
    for i, part in enumerate(parts):
        path = (*path, part)
        if i < len(parts) - 1 and path in counts:
            path = (*path, counts[path] - 1)
    return path


class _OpenValue:
    """Whether a value goes on past the end of its line: brackets still open, or a multi-line
    string not yet closed. Quoted text and comments do not count."""

    def __init__(self) -> None:
        self.depth = 0
        self.string_end = ""  # '\"\"\"' or "'''" while inside a multi-line string

    def continues(self) -> bool:
        return bool(self.depth or self.string_end)

    def scan(self, text: str) -> None:
        i = 0
        while i < len(text):
            if self.string_end:
                end = text.find(self.string_end, i)
                if end < 0:
                    return
                i, self.string_end = end + 3, ""
                continue
            char = text[i]
            if text.startswith(('"""', "'''"), i):
                self.string_end, i = text[i:i + 3], i + 3
            elif char == '"':
                i += 1
                while i < len(text) and text[i] != '"':
                    i += 2 if text[i] == "\\" else 1
                i += 1
            elif char == "'":
                end = text.find("'", i + 1)
                i = (end if end >= 0 else len(text)) + 1
            elif char == "#":
                return
            else:
                self.depth += (char in "[{") - (char in "]}")
                self.depth = max(self.depth, 0)
                i += 1


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of ``path``, or of the nearest enclosing key that has one."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None
