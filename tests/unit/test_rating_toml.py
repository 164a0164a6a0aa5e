"""Ratings written as TOML segments: per-segment offsets, shifts, effective dates; a station's
ratings over time and the discharge derived from its stage; the `watershed rating` commands."""

from __future__ import annotations

import math
from decimal import Decimal
from importlib.resources import files
from pathlib import Path

import pytest

from watershed.cli import main
from watershed.contracts.wire import MISSING, OUT_OF_RANGE, SUSPECT
from watershed.ratings.model import RatingError
from watershed.ratings.station import StationRatings
from watershed.ratings.tomlfile import parse_toml_rating
from watershed.ratings.units import CUBIC_FOOT_M3

TWO_SEGMENTS = """
id = "SAN-01.3"
station = "SAN-01"
stage_unit = "m"

[[effective]]
begin = 2025-01-01T00:00:00Z

[[segments]]            # section control, zero flow at 0.10 m
offset = 0.10
points = [[0.20, 0.20096], [0.60, 2.64]]
[[segments]]            # channel control above 0.6 m
offset = 0.30
points = [[0.60, 2.64], [2.00, 41.6]]

[[shifts]]
begin = 2025-06-01T00:00:00Z
points = [[0.30, 0.05], [1.00, 0.0]]
"""
JUNE = 1748736000  # 2025-06-01T00:00:00Z
EXAMPLE_RATING = (Path(__file__).resolve().parents[2] / "deploy" / "ingest" / "ratings"
                  / "SAN-01.toml")


def test_segments_with_their_own_offsets_reproduce_the_power_laws() -> None:
    rating = parse_toml_rating(TWO_SEGMENTS)
    assert rating.rating_id == "SAN-01.3"
    assert rating.offsets == ((Decimal("0.2"), Decimal("0.1")), (Decimal("0.6"), Decimal("0.3")))
    assert [b.stage for b in rating.breakpoints] == [Decimal("0.2"), Decimal("0.6"), Decimal(2)]
    # Each interval follows Q = Q1·((h − e)/(h1 − e))^b with its own segment's offset e.
    for (h1, q1, h2, q2, e) in [(0.2, 0.20096, 0.6, 2.64, 0.1), (0.6, 2.64, 2.0, 41.6, 0.3)]:
        b = math.log(q2 / q1) / math.log((h2 - e) / (h1 - e))
        for k in range(1, 10):
            h = h1 + (h2 - h1) * k / 10
            want = q1 * ((h - e) / (h1 - e)) ** b
            assert float(rating.rated(h)) == pytest.approx(want, rel=1e-5)
    # The first segment's offset used in the second would give another curve.
    b1 = math.log(41.6 / 2.64) / math.log((2.0 - 0.1) / (0.6 - 0.1))
    assert float(rating.rated(1.3)) != pytest.approx(2.64 * ((1.3 - 0.1) / 0.5) ** b1, rel=1e-2)
    assert rating.rated(0.19) is None and rating.rated(2.01) is None


def test_shift_is_added_to_the_stage_once_in_force() -> None:
    rating = parse_toml_rating(TWO_SEGMENTS)
    before = rating.discharge(Decimal("0.3"), at=JUNE - 1)
    during = rating.discharge(Decimal("0.3"), at=JUNE)
    assert before.shift == 0 and during.shift == pytest.approx(0.05)
    assert during.discharge == rating.rated(0.35)
    # Linear between shift points, constant beyond them.
    assert rating.discharge(Decimal("0.65"), at=JUNE).shift == pytest.approx(0.025)
    assert rating.discharge(Decimal("1.5"), at=JUNE).shift == 0


def test_station_picks_the_rating_in_force_and_flags_out_of_range() -> None:
    old = parse_toml_rating(TWO_SEGMENTS.replace('"SAN-01.3"', '"SAN-01.2"').replace(
        "begin = 2025-01-01T00:00:00Z", "begin = 2024-01-01T00:00:00Z"))
    new = parse_toml_rating(TWO_SEGMENTS)
    station = StationRatings("SAN-01", (old, new))
    assert station.at(1704067200 - 1) is None  # before any rating: no discharge at all
    assert station.derive(Decimal("1"), 0, 1704067200 - 1) is None
    assert station.at(1704067200).rating_id == "SAN-01.2"
    assert station.at(1735689600).rating_id == "SAN-01.3"  # the later revision supersedes
    ok = station.derive(Decimal("1.2"), SUSPECT, 1735689600)
    assert ok is not None and ok.rating_id == "SAN-01.3" and ok.flags == SUSPECT
    assert ok.value == new.rated(1.2)
    high = station.derive(Decimal("2.5"), 0, 1735689600)
    assert high is not None and high.value is None and high.flags == OUT_OF_RANGE | MISSING
    missing = station.derive(None, MISSING, 1735689600)
    assert missing is not None and missing.value is None and missing.flags == MISSING


def test_a_feet_rating_takes_metres_and_gives_cubic_metres() -> None:
    from watershed.ratings.rdb import parse_rdb
    usgs = parse_rdb((files("watershed") / "data" / "usgs_01594440_rating_base.rdb").read_text())
    derived = StationRatings("X", (usgs,)).derive(Decimal("2.7432"), 0, 1700000000)  # 9 ft
    # 1175 ft³/s = 33.272294... m³/s, kept to six significant digits
    assert Decimal(1175) * CUBIC_FOOT_M3 == Decimal("33.27229474560")
    assert derived is not None and derived.value == Decimal("33.2723")


@pytest.mark.parametrize("edit, message", [
    (("id = \"SAN-01.3\"", "id = \"bad id\""), "r.toml:2: id: 'bad id' is not a valid identifier"),
    (("[0.60, 2.64], [2.00, 41.6]", "[0.60, 2.64], [0.50, 41.6]"), "stages must ascend"),
    (("[2.00, 41.6]", "[2.00, 1.0]"), "must not fall"),
    (("stage_unit = \"m\"", "stage_unit = \"yd\""), "stage_unit"),
    (("begin = 2025-01-01T00:00:00Z", "begin = \"soon\""), "date-time"),
    (("station = ", "statoin = "), "r.toml:3: statoin: unknown key"),
])
def test_bad_ratings_are_refused_with_the_reason(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(RatingError, match=message):
        parse_toml_rating(TWO_SEGMENTS.replace(*edit), "r.toml")


def test_rating_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "san01.toml"
    path.write_text(TWO_SEGMENTS)
    assert main(["rating", "discharge", str(path), "0.6", "3", "0.3", "--at", "2025-06-01"]) == 0
    out = capsys.readouterr().out.splitlines()
    shifted = parse_toml_rating(TWO_SEGMENTS).rated(0.35)
    assert out[0] == "# rating SAN-01.3: stage m, discharge m3/s"
    assert out[1:] == ["stage\tshift\tdischarge\tflag", "0.6\t0.03\t3.05075\t",
                       "3\t0.00\t\tout_of_range", f"0.3\t0.05\t{shifted}\t"]
    assert main(["rating", "table", str(path), "--step", "0.1"]) == 0
    table = capsys.readouterr().out.splitlines()
    start = table.index("INDEP\tSHIFT\tDEP\tSTOR")
    assert table[start + 2] == "0.20\t0.00\t0.2010\t*"
    assert table[-1] == "2.00\t0.00\t41.60\t*"
    assert "# //RATING OFFSET1=0.1 BREAKPOINT1=0.6 OFFSET2=0.3" in table
    assert main(["rating", "table", str(tmp_path / "none.toml")]) == 2


def test_a_misspelt_key_is_refused_not_read_as_its_default() -> None:
    text = EXAMPLE_RATING.read_text()
    assert parse_toml_rating(text).rated(1.0) == Decimal("10.029")
    # The channel-control segment without its offset would rate 1.0 m at 9.45 m3/s.
    assert parse_toml_rating(text.replace("offset = 0.30\n", "")).rated(1.0) == Decimal("9.45136")
    with pytest.raises(RatingError) as e:
        parse_toml_rating(text.replace("offset = 0.30", "ofset = 0.30"), "SAN-01.toml")
    assert e.value.problems == ["SAN-01.toml:16: segments[1].ofset: unknown key (known here: "
                                "offset, points)"]


def test_a_file_reports_every_problem_with_its_line() -> None:
    text = (TWO_SEGMENTS.replace('stage_unit = "m"', 'stage_unit = "yd"')
            .replace("begin = 2025-01-01T00:00:00Z", 'begin = "soon"')
            .replace("offset = 0.30", "ofset = 0.30"))
    with pytest.raises(RatingError) as e:
        parse_toml_rating(text, "r.toml")
    assert e.value.problems == [
        "r.toml:4: stage_unit: expected one of m, ft, got 'yd'",
        "r.toml:7: effective[0].begin: expected a TOML date-time such as 2024-01-01T00:00:00Z, "
        "got 'soon'",
        "r.toml:13: segments[1].ofset: unknown key (known here: offset, points)"]
