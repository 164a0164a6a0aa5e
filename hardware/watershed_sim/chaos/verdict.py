"""Truth against InfluxDB and the counters: lost, altered, misattributed, each by station.

Every reading a station made is looked up where it belongs: its true station id, its channel,
its time. It is ``ok`` when that point holds its exact value (as Decimal), flags and seq;
``altered`` when the point holds something else that no station made there; ``missing`` when
there is no point, or when the point holds another station's reading (which is then also
``misattributed``). Every point in InfluxDB that is some other station's reading is
``misattributed``; one that no station made is ``altered`` (a phantom). A missing reading found
under another station is counted there (``elsewhere`` in the report), not as lost.

A missing reading is explained when its station still holds it (not delivered, not lost) or a
counter names it (a dead letter, a settled loss run, a conflict the store holds back), or else
by count: the readings counted as lost, held back or rejected under the ids of its
group (stations that share an address or an id can only be told apart by the counters as a
group). What remains is ``lost``. Pass: nothing lost, altered or misattributed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from watershed.contracts.channels import channel_name
from watershed.contracts.wire import MISSING, value_text
from watershed.hydro.influxql import query, quote_string

from .counters import Accounts, StoreTrace
from .fleet import ChaosStation

Content = tuple[str, int, int, Decimal | None, int]  # channel, ts, seq, value, flags


@dataclass
class GroupVerdict:
    stations: list[str]  # true ids
    ids: list[str]  # ids the gateway may know them by
    produced: int = 0
    ok: int = 0
    missing: int = 0
    misplaced: int = 0  # of the missing: stored under another station (misattributed)
    altered: int = 0
    explained: Counter[str] = field(default_factory=Counter)  # missing, by exact cause
    counted: Counter[str] = field(default_factory=Counter)  # the counters of the group's ids
    lost: int = 0  # missing and neither named nor covered by a count
    counted_beyond_missing: int = 0  # counts above what is missing: a counter off the truth
    implausible: list[str] = field(default_factory=list)  # counts above all the group made
    unexplained_at: Counter[str] = field(default_factory=Counter)  # hop each was last seen at
    missing_seqs: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    altered_examples: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    groups: list[GroupVerdict]
    misattributed: int
    misattributed_as: Counter[str]  # "MAKER as STORED-AS" -> points
    misattributed_examples: list[str]
    phantoms: int
    counter_errors: list[str]

    def total(self, name: str) -> int:
        return sum(getattr(g, name) for g in self.groups)

    @property
    def lost(self) -> int:
        return self.total("lost")

    @property
    def altered(self) -> int:
        return self.total("altered") + self.phantoms

    @property
    def passed(self) -> bool:
        return (self.total("produced") > 0 and self.lost == 0 and self.altered == 0
                and self.misattributed == 0 and not self.counter_errors)

    def figures(self) -> dict[str, Any]:
        return {"readings": self.total("produced"), "ok": self.total("ok"),
                "missing": self.total("missing"), "missing_stored_elsewhere":
                self.total("misplaced"), "lost": self.lost, "altered": self.altered,
                "misattributed": self.misattributed,
                "misattributed_as": dict(self.misattributed_as),
                "explained_by_cause": dict(sum((g.explained for g in self.groups), Counter())),
                "counted_by_cause": dict(sum((g.counted for g in self.groups), Counter())),
                "unaccounted_by_last_hop": dict(sum((g.unexplained_at for g in self.groups),
                                                    Counter())),
                "passed": self.passed}

    def report(self, limit: int = 8) -> str:
        lines = [f"{'group':<28} {'produced':>9} {'ok':>9} {'missing':>8} {'elsewhere':>9} "
                 f"{'lost':>8} {'altered':>7}  explained / counted"]
        for g in self.groups:
            name = ",".join(g.stations)
            causes = ", ".join(f"{k}={v}" for k, v in sorted((g.explained + g.counted).items()))
            lines.append(f"{name:<28} {g.produced:>9} {g.ok:>9} {g.missing:>8} "
                         f"{g.misplaced:>9} {g.lost:>8} {g.altered:>7}  {causes or '-'}")
            for station, runs in g.missing_seqs.items():
                shown = ", ".join(f"{a}-{b - 1}" if b - a > 1 else str(a) for a, b in runs[:limit])
                more = f" (+{len(runs) - limit} runs)" if len(runs) > limit else ""
                lines.append(f"    {station} missing seqs: {shown}{more}")
            if g.unexplained_at:
                lines.append("    not accounted for, by the last hop that had them: " + ", ".join(
                    f"{hop}={n}" for hop, n in sorted(g.unexplained_at.items())))
            if g.counted_beyond_missing:
                lines.append(f"    counters say {g.counted_beyond_missing} more than is missing")
            lines += [f"    altered: {x}" for x in g.altered_examples[:limit]]
        lines.append(f"misattributed points: {self.misattributed}")
        lines += [f"    {pair}: {n}" for pair, n in sorted(self.misattributed_as.items())]
        lines += [f"    {x}" for x in self.misattributed_examples[:limit]]
        if self.phantoms:
            lines.append(f"points no station made: {self.phantoms}")
        lines += [f"counter not read: {e}" for e in self.counter_errors]
        lines.append("PASS" if self.passed else
                     f"FAIL: lost {self.lost}, altered {self.altered}, misattributed "
                     f"{self.misattributed}")
        return "\n".join(lines)


def content(r: Any) -> Content:
    value = None if r.flags & MISSING else Decimal(value_text(r.mantissa, r.exponent))
    return channel_name(r.channel), r.time, r.seq, value, r.flags


def stored_points(url: str, database: str, station: str) -> dict[tuple[str, int], Content]:
    points = {}
    q = (f"SELECT value, flags, seq FROM readings WHERE station = {quote_string(station)} "
         "GROUP BY channel")
    for tags, rows in query(url, database, q, timeout_s=300):
        for row in rows:
            points[(tags["channel"], row["time"])] = (tags["channel"], row["time"], row["seq"],
                                                      row["value"], row["flags"])
    return points


def stations_in_influx(url: str, database: str) -> list[str]:
    rows = [row for _, rs in query(url, database,
                                   'SHOW TAG VALUES FROM readings WITH KEY = "station"')
            for row in rs]
    return [row["value"] for row in rows]


def groups_of(stations: list[ChaosStation]) -> list[list[ChaosStation]]:
    """Stations that share an address on a bus or an id in their HELLO, together."""
    groups: list[list[ChaosStation]] = []
    for s in stations:
        linked = [g for g in groups if any(s.station_id in (o.station_id, o.truth_id)
                                           or o.station_id == s.truth_id
                                           or (o.addr == s.addr and o.link == s.link)
                                           for o in g)]
        merged = [s] + [o for g in linked for o in g]
        groups = [g for g in groups if g not in linked] + [merged]
    return sorted(groups, key=lambda g: sorted(o.truth_id for o in g))


def judge(url: str, database: str, stations: list[ChaosStation], accounts: Accounts,
          trace: StoreTrace) -> Verdict:
    ids = sorted({s.truth_id for s in stations} | {s.station_id for s in stations}
                 | set(stations_in_influx(url, database)))
    points = {station: stored_points(url, database, station) for station in ids}
    made: dict[Content, set[str]] = defaultdict(set)  # content -> true ids that made it
    for s in stations:
        for r in s.produced:
            made[content(r)].add(s.truth_id)
    verdict = Verdict([], 0, Counter(), [], 0, list(accounts.errors))
    stored_as = {c: station for station, stored in points.items() for c in stored.values()}
    for group in groups_of(stations):
        g = _judge_group(group, points, made, stored_as, accounts, trace)
        verdict.groups.append(g)
        verdict.counter_errors += [f"implausible counter: {x}" for x in g.implausible]
    truth_ids = {s.truth_id for s in stations}
    for station, stored in points.items():
        for place, c in stored.items():
            makers = made.get(c, set())
            if station in makers:
                continue
            if makers:
                verdict.misattributed += 1
                verdict.misattributed_as[f"{'/'.join(sorted(makers))} as {station}"] += 1
                verdict.misattributed_examples.append(
                    f"{'/'.join(sorted(makers))} seq {c[2]} ({c[0]} at {c[1]}) stored as {station}")
            elif station not in truth_ids:
                verdict.phantoms += 1
    return verdict


def _judge_group(group: list[ChaosStation], points: dict[str, dict[tuple[str, int], Content]],
                 made: dict[Content, set[str]], stored_as: dict[Content, str],
                 accounts: Accounts, trace: StoreTrace) -> GroupVerdict:
    ids = sorted({s.truth_id for s in group} | {s.station_id for s in group})
    g = GroupVerdict(sorted(s.truth_id for s in group), ids)
    unexplained = 0
    for s in group:
        stored = points.get(s.truth_id, {})
        missing: list[int] = []
        for r in s.produced:
            g.produced += 1
            c = content(r)
            point = stored.get((c[0], c[1]))
            if point == c:
                g.ok += 1
                continue
            if point is not None and not made.get(point):
                g.altered += 1
                g.altered_examples.append(f"{s.truth_id} seq {r.seq}: stored {point}, made {c}")
                continue
            g.missing += 1
            missing.append(r.seq)
            if c in stored_as:  # under another station: counted as misattributed
                g.misplaced += 1
                continue
            cause = "station:still_in_outbox" if r.seq in s.outbox else next(
                (accounts.exact[i][r.seq] for i in ids if r.seq in accounts.exact.get(i, {})),
                None)
            if cause is not None:
                g.explained[cause] += 1
            else:
                unexplained += 1
                g.unexplained_at[trace.hop(s.station_id, r.seq)] += 1
        if missing:
            g.missing_seqs[s.truth_id] = _runs(missing)
    for i in ids:
        for cause, n in accounts.counted.get(i, {}).items():
            if n > g.produced:  # more than the group ever made: the counter is wrong
                g.implausible.append(f"{i} {cause}={n}, but the group made {g.produced}")
            else:
                g.counted[cause] += n
    # Exact causes are in `explained`; the counts of those same causes must not cover again.
    budget = sum(n for cause, n in g.counted.items()
                 if cause not in ("gateway:gone_from_station",))
    g.lost = max(0, unexplained - budget)
    g.counted_beyond_missing = max(0, budget - unexplained)
    return g


def _runs(seqs: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if runs and runs[-1][1] == seq:
            runs[-1] = (runs[-1][0], seq + 1)
        else:
            runs.append((seq, seq + 1))
    return runs
