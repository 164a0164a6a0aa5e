"""Structured log lines on stdout, for journald: ``key=value`` pairs (logfmt), one per line.

    level=warning logger=watershed.gateway.store msg="store full: ..." station=SAN-01

journald keeps stdout lines as MESSAGE; logfmt keeps them greppable and machine-readable
(``journalctl -u watershed-gateway | grep level=error``; the ingest logs the same way). Fields
passed as ``extra={...}`` are added to the line. No timestamp: journald stamps each line (``--timestamps`` adds one).
"""

from __future__ import annotations

import logging
import sys

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\n\\'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class LogfmtFormatter(logging.Formatter):
    def __init__(self, timestamps: bool = False) -> None:
        super().__init__()
        self._timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        fields = []
        if self._timestamps:
            fields.append(("ts", self.formatTime(record, "%Y-%m-%dT%H:%M:%S")))
        fields += [("level", record.levelname.lower()), ("logger", record.name),
                   ("msg", record.getMessage())]
        fields += [(k, v) for k, v in vars(record).items() if k not in _STANDARD]
        if record.exc_info:
            fields.append(("exc", self.formatException(record.exc_info)))
        return " ".join(f"{k}={_quote(v)}" for k, v in fields)


def configure(timestamps: bool = False) -> None:
    """Log INFO and above to stdout in logfmt, unless logging was set up already (CLI, tests)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(LogfmtFormatter(timestamps))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
