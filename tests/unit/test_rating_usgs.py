"""The real USGS base rating (package data): read, expanded, and consistent with its breakpoints
and offset — exact at breakpoints, monotonic, log Q linear in log(h − e) between them."""

from __future__ import annotations

import math
from decimal import Decimal
from importlib.resources import files

import pytest

from watershed.ratings.rdb import parse_rdb
from watershed.ratings.table import expand, format_exsa

RDB = (files("watershed") / "data" / "usgs_01594440_rating_base.rdb").read_text()
BREAKPOINTS = [(Decimal(h), Decimal(q)) for h, q in [
    ("2.99", "30"), ("4", "110"), ("5", "225"), ("5.5", "300"), ("6", "390"), ("6.5", "490"),
    ("7", "600"), ("9", "1175"), ("13", "4350"), ("20.85", "16497.75"), ("27.9", "31100")]]
OFFSET = 2.0


@pytest.fixture(scope="module")
def rating():  # type: ignore[no-untyped-def]
    return parse_rdb(RDB, "usgs_01594440_rating_base.rdb")


def test_headers_and_breakpoints_are_read(rating) -> None:  # type: ignore[no-untyped-def]
    assert rating.rating_id == "USGS.01594440.20.0"
    assert rating.expansion == "logarithmic"
    assert rating.offsets == ((Decimal("2.99"), Decimal(2)),)
    assert [(b.stage, b.discharge) for b in rating.breakpoints] == BREAKPOINTS
    assert (rating.stage_unit, rating.discharge_unit) == ("ft", "ft3/s")
    # RATING_DATETIME BEGIN=20151001000000 BZONE=-05:00 ..., END=20170206000000 EZONE=-05:00
    assert [(p.begin, p.end) for p in rating.periods] == [
        (1443675600, 1486357200), (1486357200, None)]
    assert not rating.effective_at(1443675599) and rating.effective_at(1443675600)
    assert rating.effective_at(2_000_000_000)


def test_expanded_table_is_consistent_with_breakpoints_and_offset(rating) -> None:  # type: ignore
    rows = list(expand(rating, Decimal("0.01")))
    stages = [r.stage for r in rows]
    assert stages[0] == Decimal("2.99") and stages[-1] == Decimal("27.9")
    assert len(rows) == int((Decimal("27.9") - Decimal("2.99")) / Decimal("0.01")) + 1
    # Exact at every breakpoint, and marked as one.
    at = {r.stage: r for r in rows}
    for h, q in BREAKPOINTS:
        assert at[h].discharge == q and at[h].breakpoint
    assert sum(r.breakpoint for r in rows) == len(BREAKPOINTS)
    # Strictly increasing.
    values = [float(r.discharge) for r in rows]
    assert all(b > a for a, b in zip(values, values[1:]))
    # Between two breakpoints, log Q is linear in log(h − e): the slope is the same everywhere
    # in the interval and equals the slope between the breakpoints themselves.
    for (h1, q1), (h2, q2) in zip(BREAKPOINTS, BREAKPOINTS[1:]):
        slope = math.log(float(q2 / q1)) / math.log((float(h2) - OFFSET) / (float(h1) - OFFSET))
        for r in rows:
            if h1 < r.stage < h2:
                local = (math.log(float(r.discharge) / float(q1))
                         / math.log((float(r.stage) - OFFSET) / (float(h1) - OFFSET)))
                assert local == pytest.approx(slope, rel=1e-9)


def test_stage_outside_the_rating_is_out_of_range_not_extrapolated(rating) -> None:  # type: ignore
    for stage in ("2.98", "27.91", "-1", "100"):
        result = rating.discharge(Decimal(stage))
        assert result.out_of_range and result.discharge is None
    assert rating.discharge(Decimal("2.99")).discharge == 30


def test_interpolated_value_has_six_significant_digits(rating) -> None:  # type: ignore
    q = rating.discharge(Decimal("3.5")).discharge
    exact = 30 * ((3.5 - OFFSET) / (2.99 - OFFSET)) ** (math.log(110 / 30) / math.log(2 / 0.99))
    assert q == Decimal(repr(round(exact, 4)))  # 64.6467


def test_exsa_layout_and_round_trip(rating) -> None:  # type: ignore[no-untyped-def]
    text = format_exsa(rating, Decimal("0.01"))
    lines = text.splitlines()
    header = lines.index("INDEP\tSHIFT\tDEP\tSTOR")
    assert lines[header + 1] == "16N\t16N\t16N\t1S"
    assert lines[header + 2] == "2.99\t0.00\t30.00\t*"
    assert lines[header + 3] == "3.00\t0.00\t30.56\t"
    assert lines[-1] == "27.90\t0.00\t31100.00\t*"
    assert '# //RATING ID="USGS.01594440.20.0"' in text and "OFFSET1=2" in text
    # Our exsa reads back as an exsa rating that agrees with the base to its printed precision.
    again = parse_rdb(text, "exsa")
    assert again.rating_id == "USGS.01594440.20.0"
    assert again.periods == rating.periods
    for stage in ("3.333", "8.5", "20.9", "27.85"):
        a, b = again.rated(float(stage)), rating.rated(float(stage))
        assert a is not None and b is not None
        assert float(a) == pytest.approx(float(b), rel=2e-4)


def test_off_grid_breakpoints_are_rows_too(rating) -> None:  # type: ignore[no-untyped-def]
    stages = [r.stage for r in expand(rating, Decimal("1"))]
    assert Decimal("2.99") in stages and Decimal("20.85") in stages and Decimal(3) in stages
