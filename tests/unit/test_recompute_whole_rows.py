"""Recompute reads stage points whole: one the ingest is writing as it reads shows in part."""

from __future__ import annotations

from decimal import Decimal

import pytest

from watershed.hydro.influxql import QueryError, whole_rows

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
