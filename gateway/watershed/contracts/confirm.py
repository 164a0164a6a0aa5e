"""End-to-end confirmations, ingest -> gateway (docs/contracts.md 2, "Nothing lost, end to end").

After an ingest has written a message's readings to InfluxDB (or rejected some of them) it
publishes, before it acknowledges the message to the broker, on ``<prefix>/v1/<gateway>/confirm``:

    {"v":1,"ingest":"ingest-1",
     "written":{"SAN-01":[[41,49],[60,61]]},
     "rejected":{"SAN-02":[[7,8,"ts: 2019-01-01T00:00:00Z is older than 86400 s"]]}}

Seqs are per station, in half-open runs ``[first, end)``. A gateway keeps a reading in its
"must deliver" set until a confirmation names it, however often the broker acknowledged it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .ids import is_valid_id
from .mqtt import PAYLOAD_VERSION, PayloadError
from .wire import MAX_SEQ
MAX_REASON = 500  # characters of a rejection reason kept in a confirmation

Run = tuple[int, int]


def seq_runs(seqs: Iterable[int]) -> list[Run]:
    """Sorted, merged half-open runs of the given seqs: ``[3, 1, 2, 7]`` -> ``[(1, 4), (7, 8)]``."""
    runs: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if runs and runs[-1][1] == seq:
            runs[-1][1] = seq + 1
        else:
            runs.append([seq, seq + 1])
    return [(first, end) for first, end in runs]


@dataclass
class Confirmation:
    """What one ingest says it has settled for one gateway."""

    ingest: str
    written: dict[str, list[Run]] = field(default_factory=dict)
    rejected: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)

    def readings(self) -> int:
        return (sum(end - first for runs in self.written.values() for first, end in runs)
                + sum(end - first for runs in self.rejected.values() for first, end, _ in runs))


class ConfirmationBuilder:
    """Collects the settled readings of many messages, per gateway and station."""

    def __init__(self) -> None:
        self._written: dict[str, dict[str, list[int]]] = {}
        self._rejected: dict[str, dict[str, dict[str, list[int]]]] = {}

    def __bool__(self) -> bool:
        return bool(self._written or self._rejected)

    def written(self, gateway: str, station: str, seqs: Iterable[int]) -> None:
        self._written.setdefault(gateway, {}).setdefault(station, []).extend(seqs)

    def rejected(self, gateway: str, station: str, seq: int, reason: str) -> None:
        by_reason = self._rejected.setdefault(gateway, {}).setdefault(station, {})
        by_reason.setdefault(reason[:MAX_REASON], []).append(seq)

    def confirmations(self, ingest: str) -> dict[str, Confirmation]:
        """One confirmation per gateway; a seq both written and rejected counts as rejected
        (one of its points was refused)."""
        out: dict[str, Confirmation] = {}
        for gateway in {*self._written, *self._rejected}:
            confirmation = out[gateway] = Confirmation(ingest)
            rejected = self._rejected.get(gateway, {})
            for station, by_reason in rejected.items():
                confirmation.rejected[station] = [
                    (first, end, reason) for reason, seqs in by_reason.items()
                    for first, end in seq_runs(seqs)]
            for station, seqs in self._written.get(gateway, {}).items():
                refused = {s for r in rejected.get(station, {}).values() for s in r}
                runs = seq_runs(s for s in seqs if s not in refused) if refused else seq_runs(seqs)
                if runs:
                    confirmation.written[station] = runs
        return out


def encode_confirmation(c: Confirmation) -> bytes:
    return json.dumps({"v": PAYLOAD_VERSION, "ingest": c.ingest,
                       "written": {s: [list(r) for r in runs] for s, runs in c.written.items()},
                       "rejected": {s: [list(r) for r in runs] for s, runs in c.rejected.items()}},
                      separators=(",", ":")).encode()


def decode_confirmation(payload: bytes) -> Confirmation:
    """Parse and check a confirmation; raises PayloadError with the reason."""
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as e:
        raise PayloadError(f"not JSON: {e}") from e
    if not isinstance(obj, dict) or obj.get("v") != PAYLOAD_VERSION:
        raise PayloadError("not a version 1 confirmation object")
    ingest = obj.get("ingest")
    if not isinstance(ingest, str) or not is_valid_id(ingest):
        raise PayloadError(f"ingest: not a valid identifier: {ingest!r}")
    c = Confirmation(ingest)
    for station, runs in _stations(obj, "written").items():
        c.written[station] = [_run(r, 2) for r in runs]
    for station, runs in _stations(obj, "rejected").items():
        c.rejected[station] = [_run(r, 3) for r in runs]
    return c


def _stations(obj: Mapping[str, Any], key: str) -> Mapping[str, list[Any]]:
    value = obj.get(key, {})
    if not isinstance(value, dict):
        raise PayloadError(f"{key}: expected an object of stations")
    for station, runs in value.items():
        if not is_valid_id(station) or not isinstance(runs, list):
            raise PayloadError(f"{key}: bad station entry {station!r}")
    return value


def _run(item: object, size: int) -> Any:
    if not isinstance(item, list) or len(item) != size:
        raise PayloadError(f"run: expected a list of {size} items, got {item!r}")
    first, end = item[0], item[1]
    if type(first) is not int or type(end) is not int or not 0 <= first < end <= MAX_SEQ + 1:
        raise PayloadError(f"run: bad seq range {item[:2]!r}")
    if size == 3:
        if not isinstance(item[2], str):
            raise PayloadError("run: the rejection reason must be a string")
        return first, end, item[2]
    return first, end
