"""Two replies from one address to one POLL: a late station or a second station
(gateway/watershed/gateway/late_replies.py)."""

from __future__ import annotations

from watershed.contracts import wire
from watershed.contracts.wire import Reading
from watershed.gateway.late_replies import fullest, one_station

ADDR = 3


def data(*seqs: int, channel: int = 1, next_seq: int = 0) -> wire.Data:
    return wire.Data(ADDR, tuple(Reading(s, channel, 1_770_000_000 + 60 * s, 100 + s, -2)
                                 for s in seqs), next_seq=next_seq)


def hello(station_id: str) -> wire.Hello:
    return wire.Hello(ADDR, station_id, "1.0", 0, 0, 1, 1, 0)


def test_the_same_readings_again_are_one_station() -> None:
    assert one_station([], [data(1, 2, 3), data(1, 2, 3)])


def test_a_newer_reply_with_more_taken_meanwhile_is_one_station() -> None:
    assert one_station([hello("SAN-01"), hello("SAN-01")], [data(1, 2), data(1, 2, 3)])
    assert one_station([], [data(next_seq=7), data(7, 8)])
    assert one_station([], [data(next_seq=7), data(next_seq=7)])


def test_two_stations_at_one_address_are_not() -> None:
    assert not one_station([], [data(1, 2, 3), data(1, 2, 3, channel=2)])  # other content
    assert not one_station([], [data(1, 2, 3), data(40, 41)])  # other seqs
    assert not one_station([], [data(1, 2, 3), data(1, 2)])  # the newer has less
    assert not one_station([], [data(next_seq=7), data(next_seq=46)])
    assert not one_station([], [data(next_seq=7), data(1, 2)])
    assert not one_station([hello("SAN-01"), hello("SAN-02")], [data(1)])


def test_a_reply_of_several_frames_caught_in_part_is_one_station() -> None:
    cut_short = wire.DataMore(ADDR, data(1, 2).readings)
    assert one_station([], [data(1, 2, 3), cut_short])  # its first frame, then the next poll
    assert not one_station([], [data(1, 2, 3), wire.DataMore(ADDR, data(1, 5).readings)])
    assert fullest([data(1, 2, 3), cut_short]) == data(1, 2, 3)
    assert fullest([data(1, 2), data(1, 2, 3), data(1, 2, 3, next_seq=4)]) == data(
        1, 2, 3, next_seq=4)
