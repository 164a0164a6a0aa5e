"""Recompute, and the raw reads of the hydrologists' tools, read points whole: one the ingest
is writing as they read shows in part."""

from __future__ import annotations

from decimal import Decimal

import pytest

from watershed.hydro.influxql import QueryError, Series, whole_rows
from watershed.hydro.query import ReadingsQuery, _whole_points

WHOLE = {"time": 1770076800, "value": Decimal("1.42"), "flags": 0, "seq": 9, "gateway": "gw",
         "basin": "santiago"}


class Answers:
    """InfluxDB answering the same query with each of ``looks`` in turn."""

    def __init__(self, *looks: list[dict]) -> None:
        self.looks = list(looks)
        self.asked = 0

    def __call__(self) -> list[tuple[dict[str, str], list[dict]]]:
        rows = self.looks[min(self.asked, len(self.looks) - 1)]
        self.asked += 1
        return [({}, rows)]


def test_a_point_shown_without_its_flags_is_asked_for_again():
    ask = Answers([WHOLE | {"time": 1}, WHOLE | {"flags": None}], [WHOLE | {"time": 1}, WHOLE])
    assert whole_rows(ask, wait_s=0) == [WHOLE | {"time": 1}, WHOLE]
    assert ask.asked == 2


def test_a_missing_stage_without_a_value_is_whole():
    ask = Answers([WHOLE | {"value": None, "flags": 1}])
    assert whole_rows(ask, wait_s=0) == [WHOLE | {"value": None, "flags": 1}]
    assert ask.asked == 1


def test_a_point_that_stays_in_part_is_one_clear_error():
    ask = Answers([WHOLE | {"seq": None}])
    with pytest.raises(QueryError, match="InfluxDB still shows points in part after 3 tries: "
                                         "1, the first at 1770076800 without seq"):
        whole_rows(ask, tries=3, wait_s=0)
    assert ask.asked == 3


def test_raw_readings_are_asked_for_again_while_a_point_lacks_its_flags():
    """`watershed query`, export, plot and check read raw readings through _whole_points: the
    point the ingest is writing shows, for a moment, with its value and no flags (which the
    hydrologists' tools would take as none set)."""
    looks = [[WHOLE | {"flags": None}], [WHOLE | {"flags": 16}]]
    asked = []

    def ask() -> list[list[Series]]:
        asked.append(1)
        return [[Series("readings", {}, looks[min(len(asked), 2) - 1])]]

    got = _whole_points(ReadingsQuery(0, 2**31, columns=("seq",)), ask)
    assert got[0][0].rows == [WHOLE | {"flags": 16}] and len(asked) == 2
