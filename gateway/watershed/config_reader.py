"""One way to read a TOML file (gateway, ingest, scenario, rating): typed getters over its
tables that collect every problem, each as ``file:line: key: message``, and refuse unknown keys.

    root = load_toml(path)                      # or parse_toml(text, source), or of_mapping(d)
    gateway = root.table("gateway", required=True)
    port = gateway.integer("port", 1883, 1, 65535)
    gateway.reject_unknown()                    # after its last getter
    root.reject_unknown()
    root.check()                                # raises ConfigError listing every problem

A getter that finds a problem records it and returns a harmless placeholder, so the rest of the
file is still read and every problem is reported in one go. A misspelt key silently falling back
to a default is how a gateway ends up polling the wrong port for a month, hence
``reject_unknown``. A value given as ``secret`` is never echoed in a message, only its type.

A secret (``Table.secret``: passwords, tokens) comes from one of three keys: ``password`` inline,
``password_file`` (a file holding it; a relative path is looked up in ``$CREDENTIALS_DIRECTORY``,
where systemd's ``LoadCredential=`` puts it, else beside the config file) or ``password_env``
(the name of an environment variable). A config file that holds a secret inline and that group
or others may read is refused, with the fix in the message.
``file:line`` is left out when there is no file (a dict built in code) or no line for the key.
"""

from __future__ import annotations

import math
import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

from .contracts.ids import is_valid_id
from .toml_lines import KeyPath, key_lines, line_of

REQUIRED: Any = object()  # the default of a key that must be given
_IDENT_RULE = "1-32 characters from A-Z a-z 0-9 _ . -, starting with a letter or digit"


class ConfigError(ValueError):
    """A file that cannot be used; ``problems`` lists each one (``file:line: key: message``)."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class Problems:
    """Every problem found in one document, placed by file and line where known."""

    def __init__(self, source: str | None = None, lines: dict[KeyPath, int] | None = None,
                 error: type[ConfigError] = ConfigError) -> None:
        self.source = source
        self.lines = lines or {}
        self.error = error
        self._found: list[tuple[int, str]] = []  # (line or 0, problem)

    def add(self, path: KeyPath, message: str) -> None:
        where, line = "", None
        if self.source is not None:
            line = line_of(self.lines, path)
            where = f"{self.source}:{line}: " if line else f"{self.source}: "
        self._found.append((line or 0, f"{where}{dotted(path) or '(top level)'}: {message}"))

    @property
    def items(self) -> list[str]:
        """In the order of the file (problems of the whole file first), else as found."""
        return [text for _, text in sorted(self._found, key=lambda found: found[0])]

    def check(self) -> None:
        if self._found:
            raise self.error(self.items)


def dotted(path: KeyPath) -> str:
    """``("station", 0, "sensor", 1, "pin")`` as the messages write it: station[0].sensor[1].pin."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def parse_toml(text: str, source: str | None = None, *,
               parse_float: Callable[[str], Any] = float,
               error: type[ConfigError] = ConfigError) -> Table:
    """The document's root table; a syntax error raises ``error`` at once, with its line."""
    try:
        document = tomllib.loads(text, parse_float=parse_float)
    except tomllib.TOMLDecodeError as e:
        # tomllib's message ends "(at line N, column M)": put the line where a reader looks.
        m = re.search(r"\(at line (\d+), column \d+\)", str(e))
        where = source or "<toml>"
        where = f"{where}:{m.group(1)}" if m else where
        raise error([f"{where}: not valid TOML: {str(e).split(' (at line')[0]}"]) from e
    return Table(document, (), Problems(source, key_lines(text), error))


def load_toml(path: str | Path, *, parse_float: Callable[[str], Any] = float,
              error: type[ConfigError] = ConfigError) -> Table:
    """Read and parse a file; one that cannot be read raises ``error`` naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise error([f"{path}: cannot read: {e.strerror or e}"]) from e
    except UnicodeDecodeError as e:
        raise error([f"{path}: not UTF-8 text"]) from e
    return parse_toml(text, str(path), parse_float=parse_float, error=error)


def of_mapping(data: Mapping[str, Any], error: type[ConfigError] = ConfigError) -> Table:
    """The root table of a document built in code: problems name keys, no file or line."""
    return Table(data, (), Problems(None, None, error))


class Table:
    """One table of a document, read through typed getters that record problems."""

    def __init__(self, data: Any, path: KeyPath, problems: Problems) -> None:
        self.data: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        self.path = path
        self.problems = problems
        self._used: set[str] = set()

    @classmethod
    def of(cls, table: Table) -> Self:
        """The same table read through a subclass (one that adds getters of its own)."""
        return cls(table.data, table.path, table.problems)

    # -- problems -------------------------------------------------------------------------------

    def problem(self, key: str | int | None, message: str) -> None:
        """Record a problem with ``key`` of this table (None: the table itself)."""
        self.problems.add(self.path if key is None else (*self.path, key), message)

    def check(self) -> None:
        """Raise the document's error listing every problem, if there is any."""
        self.problems.check()

    def reject_unknown(self) -> None:
        """A problem for each key no getter has asked for: call after the table's last getter."""
        for key in self.data:
            if key not in self._used:
                known = ", ".join(sorted(self._used)) or "none"
                self.problem(key, f"unknown key (known here: {known})")

    def _expected(self, key: str, what: str, value: Any, secret: bool = False) -> None:
        self.problem(key, f"expected {what}, got {_type_of(value) if secret else _kind(value)}")

    # -- values ---------------------------------------------------------------------------------

    def value(self, key: str, default: Any = REQUIRED) -> Any:
        """The raw value; ``default`` when absent (REQUIRED: a problem, and None)."""
        self._used.add(key)
        if key in self.data:
            return self.data[key]
        if default is REQUIRED:
            self.problem(key, "required")
            return None
        return default

    def given(self, key: str) -> bool:
        """Whether the document sets ``key`` (the typed getters check only what is given)."""
        return key in self.data

    def table(self, key: str, required: bool = False) -> Self:
        value = self.value(key, REQUIRED if required else {})
        if value is not None and not isinstance(value, Mapping):
            self._expected(key, f"a table [{_header((*self.path, key))}]", value)
        return type(self)(value, (*self.path, key), self.problems)

    def tables(self, key: str, required: bool = False) -> list[Self]:
        """An array of tables ([[key]]); ``required``: at least one."""
        value = self.value(key, [])
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            self._expected(key, f"tables [[{_header((*self.path, key))}]]", value)
            return []
        if required and not value:
            self.problem(key, f"at least one [[{_header((*self.path, key))}]] is required")
        return [type(self)(v, (*self.path, key, i), self.problems) for i, v in enumerate(value)]

    def text(self, key: str, default: Any = REQUIRED, allow_empty: bool = False,
             secret: bool = False) -> str:
        """A string; ``secret``: a wrong value is described by its type, never shown."""
        value = self.value(key, default)
        if not self.given(key):
            return value or ""
        if not isinstance(value, str) or (not value and not allow_empty):
            if value is not None:
                what = "a string" if allow_empty else "a non-empty string"
                self._expected(key, what, value, secret)
            return ""
        return value

    def secret(self, key: str) -> str:
        """A password or token from ``key`` (inline), ``key_file`` or ``key_env``: at most one
        of them; "" when none is given. Never shows the secret in a problem."""
        given = [k for k in (key, f"{key}_file", f"{key}_env") if self.given(k)]
        inline = self.text(key, "", allow_empty=True, secret=True)
        file = self.text(f"{key}_file", "", allow_empty=True)
        env = self.text(f"{key}_env", "", allow_empty=True)
        if len(given) > 1:
            self.problem(given[1], f"give one of {', '.join(given)}, not several")
            return ""
        if inline:
            self._refuse_readable_file(key)
            return inline
        if file:
            return self._secret_file(f"{key}_file", file)
        if env:
            value = os.environ.get(env, "")
            if not value:
                self.problem(f"{key}_env", f"environment variable {env} is not set or empty")
            return value
        return ""

    def _secret_file(self, key: str, name: str) -> str:
        path = Path(name)
        if not path.is_absolute():
            credentials = os.environ.get("CREDENTIALS_DIRECTORY")
            source = self.problems.source
            base = (Path(credentials) if credentials
                    else Path(source).parent if source else Path.cwd())
            path = base / path
        try:
            value = path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            self.problem(key, f"cannot read {path}: {why}")
            return ""
        if not value:
            self.problem(key, f"{path} is empty")
        return value

    def _refuse_readable_file(self, key: str) -> None:
        """A secret inline in a file group or others can read is refused (mode 0600 fixes it,
        or the secret in a file of its own)."""
        source = self.problems.source
        if source is None:
            return
        try:
            mode = stat.S_IMODE(os.stat(source).st_mode)
        except OSError:
            return
        if mode & 0o077:
            self.problem(key, f"a secret inline in a file readable by group or others (mode "
                              f"{mode:04o}): run `chmod 600 {source}`, or move it to a file of "
                              f"its own with {key}_file = \"...\" (systemd LoadCredential=) or "
                              f"to an environment variable named by {key}_env")

    def ident(self, key: str, default: Any = REQUIRED) -> str:
        """An identifier (station, gateway, channel ...), as contracts.ids defines it."""
        value = self.text(key, default)
        if value and not is_valid_id(value):
            self.problem(key, f"{value!r} is not a valid identifier ({_IDENT_RULE})")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: Any = REQUIRED) -> str:
        value = self.value(key, default)
        if self.given(key) and value not in choices:
            self._expected(key, f"one of {', '.join(choices)}", value)
            return ""
        return value or ""

    def boolean(self, key: str, default: Any = REQUIRED) -> bool:
        value = self.value(key, default)
        if not isinstance(value, bool):
            if self.given(key):
                self._expected(key, "true or false", value)
            return bool(default) if isinstance(default, bool) else False
        return value

    def integer(self, key: str, default: Any = REQUIRED, low: int | None = None,
                high: int | None = None) -> int:
        """An integer (not a boolean) from ``low`` to ``high``. A wrong value comes back as the
        default (or ``low``, or 0) if of the wrong type, as itself if out of range."""
        value = self.optional_integer(key, low, high, default)
        if value is None:
            return default if isinstance(default, int) else low or 0
        return value

    def optional_integer(self, key: str, low: int | None = None, high: int | None = None,
                         default: Any = None) -> int | None:
        value = self.value(key, default)
        if not self.given(key):
            return value
        if type(value) is not int or not _within(value, low, high):
            self._expected(key, f"an integer{_bounds(low, high)}", value)
            return value if type(value) is int else None
        return value

    def number(self, key: str, default: Any = REQUIRED, low: float | None = None,
               high: float | None = None) -> float:
        """A finite number (an integer will do) from ``low`` to ``high``, as a float."""
        value = self.optional_number(key, low, high, default)
        if value is None:
            return float(default) if _is_number(default) else float(low or 0)
        return value

    def optional_number(self, key: str, low: float | None = None, high: float | None = None,
                        default: Any = None) -> float | None:
        value = self.value(key, default)
        if not self.given(key):
            return None if value is None else float(value)
        if not _is_number(value) or not _within(value, low, high):
            self._expected(key, f"a number{_bounds(low, high)}", value)
            return float(value) if _is_number(value) else None
        return float(value)

    def idents(self, key: str, default: Any = ()) -> tuple[str, ...]:
        """A list of identifiers."""
        value = self.value(key, default)
        if not self.given(key):
            return tuple(value or ())
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, str) and is_valid_id(v) for v in value):
            self._expected(key, f"a list of identifiers ({_IDENT_RULE})", value)
            return ()
        return tuple(value)

    def texts(self, key: str, default: Any = ()) -> tuple[str, ...]:
        """A list of non-empty strings."""
        value = self.value(key, default)
        if not self.given(key):
            return tuple(value or ())
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v
                                                           for v in value):
            self._expected(key, "a list of non-empty strings", value)
            return ()
        return tuple(value)


def _header(path: KeyPath) -> str:
    """How a table is named in a TOML header: station.alert, without array indexes."""
    return ".".join(str(part) for part in path if isinstance(part, str))


def _is_number(value: Any) -> bool:
    # Decimal too: a rating reads its numbers as decimals to keep their exact text.
    return (not isinstance(value, bool) and hasattr(value, "__float__")
            and not isinstance(value, str) and math.isfinite(value))


def _within(value: Any, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {_number_text(low)} to {_number_text(high)}"
    if low is not None:
        return f" of at least {_number_text(low)}"
    if high is not None:
        return f" of at most {_number_text(high)}"
    return ""


def _number_text(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, Decimal):
        return str(value)  # as written in the file, not Decimal('0.1')
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return repr(value)


def _type_of(value: Any) -> str:
    """What a value is, without showing it: for secrets."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, (float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    if isinstance(value, (datetime, date, time)):
        return "a date or time"
    if isinstance(value, list):
        return "a list"
    return _kind(value)
