"""Arithmetic on runs of sequence numbers, ``[first, end)`` half-open, per station."""

from __future__ import annotations

from collections.abc import Iterable

Run = tuple[int, int]


def runs_of(seqs: Iterable[int]) -> list[Run]:
    """Collapse sequence numbers into ascending ``[first, end)`` runs."""
    runs: list[Run] = []
    for seq in sorted(set(seqs)):
        if runs and runs[-1][1] == seq:
            runs[-1] = (runs[-1][0], seq + 1)
        else:
            runs.append((seq, seq + 1))
    return runs


def merged(runs: Iterable[Run]) -> list[Run]:
    """Ascending runs with every overlapping or touching pair joined."""
    out: list[Run] = []
    for first, end in sorted(runs):
        if out and first <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((first, end))
    return out


def gaps(covered: Iterable[Run], low: int, high: int) -> list[Run]:
    """The parts of ``[low, high)`` that no run covers, ascending."""
    out: list[Run] = []
    at = low
    for first, end in merged(covered):
        if end <= at:
            continue
        if first >= high:
            break
        if first > at:
            out.append((at, first))
        at = max(at, end)
    if at < high:
        out.append((at, high))
    return out


def size(runs: Iterable[Run]) -> int:
    return sum(end - first for first, end in runs)
