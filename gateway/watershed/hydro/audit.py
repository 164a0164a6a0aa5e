"""`watershed audit`: is a station's record complete? Every sample slot its channels' intervals
imply (registry ``channels``; a station samples at multiples of the interval, contracts 1.4) is
put in one class:

- ``stored``: a reading with a value; ``missing``: stored as missing (the station said so);
- ``lost``: the station produced it (its seq is absent between stored seqs) and a gateway's
  loss ledger counts it lost (reasons from the ledgers: gone_from_station, shed_*, quarantined,
  rejected_by_ingest);
- ``pending``: produced or due, not yet arrived: waiting in the station's outbox, the
  gateway's queue or quarantine, or the station has not been heard from since;
- ``not_sampled``: the station reported it was off then (a power cut, a reboot): a
  ``not_sampled_s`` reading covers it (contracts 1.6, firmware/gap.py);
- ``marked``: a hydrologist's correction covers it (``watershed correct mark``), with why;
- ``unaccounted``: none of these — e.g. slots a station too old to report its gaps never
  sampled (no seq is missing there).

Seq continuity comes from the stored ``seq`` (per station, all channels). The ledgers count per
station since the store began, not per time: seq gaps are attributed to them up to their total.
Exit status 1 when anything is unaccounted.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..contracts.channels import NOT_SAMPLED
from ..contracts.influx import DISCHARGE_CHANNEL
from ..contracts.wire import MISSING
from .corrections import Correction
from .series import Point, StationSeries

CLASSES = ("stored", "missing", "lost", "not_sampled", "pending", "marked", "unaccounted")


@dataclass
class ChannelAudit:
    channel: str
    interval_s: int
    expected: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    unaccounted: list[int] = field(default_factory=list)  # slot times

    @property
    def complete(self) -> float:
        return self.counts["stored"] / self.expected if self.expected else 1.0


@dataclass
class Audit:
    station: str
    start: int
    end: int
    channels: list[ChannelAudit]
    seq_first: int | None
    seq_last: int | None
    seq_gaps: list[tuple[int, int, int, int]]  # (first missing, last missing, after t, before t)
    ledgers: dict[str, dict[str, int]]  # gateway -> reason -> readings (this station)
    pending_readings: int
    marks: list[Correction]  # the hydrologists' corrections overlapping the range
    extra: int  # readings off the slot grid (event mode)
    notes: list[str]
    gaps: list[tuple[int, int]] = field(default_factory=list)  # the station's, [from, to]

    @property
    def unaccounted(self) -> int:
        return sum(c.counts["unaccounted"] for c in self.channels)


def gap_periods(points: list[Point]) -> list[tuple[int, int]]:
    """The periods ``[from, to]`` (Unix s, both included) a station reported it did not
    sample: its ``not_sampled_s`` readings, each ``value`` seconds up to its time."""
    return sorted((p.time - int(p.value), p.time) for p in points if p.value is not None)


def audit(series: StationSeries, intervals: dict[str, int], start: int, end: int,
          health: dict[str, dict[str, Any]] | None, corrections: list[Correction],
          now: float | None = None, gaps: list[tuple[int, int]] | None = None) -> Audit:
    """``gaps``: the station's reports of periods it did not sample (default: those among the
    series' ``not_sampled_s`` readings; a report after ``end`` may cover slots before it)."""
    now = time.time() if now is None else now
    if gaps is None:
        gaps = gap_periods(series.channels.get(NOT_SAMPLED, []))
    gaps = [(a, b) for a, b in gaps if a < end and b >= start]
    sampled = {ch: pts for ch, pts in series.channels.items()
               if not (ch == DISCHARGE_CHANNEL and any(p.rating_id for p in pts))}
    seqs = sorted({(p.seq, p.time) for pts in sampled.values() for p in pts
                   if p.seq is not None})
    seq_gaps = [(a + 1, b - 1, ta, tb) for (a, ta), (b, tb) in zip(seqs, seqs[1:]) if b > a + 1]
    last_time = max((p.time for pts in sampled.values() for p in pts), default=None)
    ledgers, pending, last_seen, notes = _health(series.station, health)
    channels, candidates, extra = [], [], 0
    for channel, interval in sorted(intervals.items()):
        ca = ChannelAudit(channel, interval)
        stored = {p.time: p for p in sampled.get(channel, [])}
        extra += sum(1 for t in stored if t % interval)
        first = -(-start // interval) * interval
        for slot in range(first, end, interval):
            if slot > now:
                break  # not due yet
            ca.expected += 1
            p = stored.get(slot)
            if p is not None:
                missing = p.value is None or (p.flags or 0) & MISSING
                ca.counts["missing" if missing else "stored"] += 1
            elif any(c.channel == channel and c.start <= slot < c.end for c in corrections):
                ca.counts["marked"] += 1
            else:
                candidates.append((slot, ca))
        channels.append(ca)
    # slots in a seq gap were produced: lost (ledger) or pending; the others were never sampled
    in_gap: set[tuple[int, str]] = set()
    for first_missing, last_missing, ta, tb in seq_gaps:
        inside = [(slot, ca.channel) for slot, ca in candidates
                  if ta <= slot <= tb and (slot, ca.channel) not in in_gap]
        in_gap.update(inside[:last_missing - first_missing + 1])
    lost_budget = sum(sum(v for k, v in reasons.items() if k != "total")
                      for reasons in ledgers.values())
    for slot, ca in candidates:
        produced = (slot, ca.channel) in in_gap
        if produced and lost_budget > 0:
            lost_budget -= 1
            ca.counts["lost"] += 1
        elif produced and pending > 0:
            pending -= 1
            ca.counts["pending"] += 1
        elif not produced and any(a <= slot <= b for a, b in gaps):
            ca.counts["not_sampled"] += 1
        elif last_time is None or slot > last_time and (pending > 0 or last_seen is None
                                                         or last_seen < slot):
            ca.counts["pending"] += 1
        else:
            ca.counts["unaccounted"] += 1
            ca.unaccounted.append(slot)
    return Audit(series.station, start, end, channels, seqs[0][0] if seqs else None,
                 seqs[-1][0] if seqs else None, seq_gaps, ledgers, pending, corrections, extra,
                 notes, gaps)


def _health(station: str, health: dict[str, dict[str, Any]] | None
            ) -> tuple[dict[str, dict[str, int]], int, int | None, list[str]]:
    """(ledgers, readings waiting, last seen, notes) for ``station`` from the gateways'
    health."""
    if health is None:
        return {}, 0, None, ["no gateway health read (audit with --config to read the loss "
                             "ledgers from the broker): losses cannot be attributed"]
    ledgers: dict[str, dict[str, int]] = {}
    pending, last_seen, notes = 0, None, []
    for gateway, h in sorted(health.items()):
        st = (h.get("stations") or {}).get(station)
        held = ((h.get("quarantine") or {}).get("stations") or {}).get(station) or 0
        pending += int(held)
        if st is None:
            continue
        losses = {k: int(v) for k, v in (st.get("losses") or {}).items() if v}
        if losses:
            ledgers[gateway] = losses
        pending += int(st.get("outbox_depth") or 0)
        queue = h.get("queue") or {}
        pending += int(queue.get("unsent") or 0) + int(queue.get("unconfirmed") or 0)
        seen = st.get("last_seen")
        if seen is not None:
            last_seen = max(last_seen or 0, int(seen))
    if not any(station in (h.get("stations") or {}) for h in health.values()):
        notes.append(f"no gateway's health lists {station}")
    return ledgers, pending, last_seen, notes


def format_audit(a: Audit, time_text: Any) -> str:
    lines = [f"audit {a.station} {time_text(a.start)} .. {time_text(a.end)}"]
    header = ["channel", "interval_s", "expected", *CLASSES, "complete"]
    rows = [[c.channel, str(c.interval_s), str(c.expected),
             *(str(c.counts[k]) for k in CLASSES), f"{100 * c.complete:.1f}%"]
            for c in a.channels]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        lines.append("  ".join(x.ljust(w) if i == 0 else x.rjust(w)
                               for i, (x, w) in enumerate(zip(r, widths))))
    if a.seq_first is None:
        lines.append("seq: no readings stored in this range")
    else:
        missing = sum(b - f + 1 for f, b, _, _ in a.seq_gaps)
        lines.append(f"seq: {a.seq_first}..{a.seq_last}, {missing} missing"
                     + "".join(f"\n  seq {f}-{b} missing, between {time_text(ta)} and "
                               f"{time_text(tb)}" for f, b, ta, tb in a.seq_gaps))
    for gateway, reasons in a.ledgers.items():
        lines.append(f"loss ledger of {gateway} (all time): " + ", ".join(
            f"{k} {v}" for k, v in sorted(reasons.items())))
    lines += [f"not sampled (the station's report): {time_text(f)} .. {time_text(t)} "
              f"({t - f} s: power cut or reboot)" for f, t in a.gaps]
    if a.extra:
        lines.append(f"{a.extra} readings off the slot grid (event mode)")
    lines += [f"correction: {m.channel} {time_text(m.start)} .. {time_text(m.end)}: "
              f"{m.describe()}" for m in a.marks]
    for c in a.channels:
        for slot in c.unaccounted:
            lines.append(f"unaccounted: {c.channel} {time_text(slot)}: no reading, no seq "
                         f"missing around it, no gap the station reported (a station too old "
                         f"to report its gaps?)")
    lines += [f"note: {n}" for n in a.notes]
    lines.append(f"{'COMPLETE' if not a.unaccounted else 'INCOMPLETE'}: "
                 f"{a.unaccounted} slots unaccounted for")
    return "\n".join(lines) + "\n"
