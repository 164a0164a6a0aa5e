"""SD wear: readings the poll cycles of a commit slot take are stored in one durable commit and
ACKed only then (poller.py hold/store_held, link.py _commit_due); readings several threads
store at once share a commit (store/group_commit.py). "ACK only after durable" holds
throughout."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from watershed.contracts import wire
from watershed.contracts.mqtt import MessageReading
from watershed.contracts.wire import Reading
from watershed.gateway.config import LinkConfig, StationConfig
from watershed.gateway.link import SerialLink
from watershed.gateway.held_readings import MAX_READING_BYTES
from watershed.gateway.poller import Poller
from watershed.gateway.store import Added, Store

from tests.unit.test_gateway_poller import NOW, STAGE, T0, ScriptedPort, framed

REGISTRY = {"SAN-01": StationConfig("SAN-01", 7, "santiago", {}),
            "SAN-02": StationConfig("SAN-02", 8, "santiago", {})}


def bus(readings_of: dict[int, list[Reading]], next_seq: int = 1000,
        flash: tuple[Reading, ...] = ()):
    """Stations at the addresses of ``readings_of``: HELLO when asked, their readings as DATA
    until an ACK covers them; a backfill from ``flash`` (what they still hold, acked or not)."""
    held = {addr: list(rs) for addr, rs in readings_of.items()}

    def respond(frame: wire.Frame) -> list[wire.Frame]:
        if isinstance(frame, wire.Ack):
            held[frame.addr] = [r for r in held[frame.addr] if r.seq >= frame.cumulative
                                and not any(a <= r.seq < b for a, b in frame.ranges)]
        if not isinstance(frame, wire.Poll):
            return []
        out: list[wire.Frame] = []
        if frame.want & wire.WANT_HELLO:
            out.append(wire.Hello(frame.addr, f"SAN-0{frame.addr - 6}", "1.0.0", 0, 1, 1,
                                  next_seq, 0))
        if frame.backfill:
            first, end = frame.backfill
            return out + [wire.Data(frame.addr, tuple(r for r in flash if first <= r.seq < end))]
        if frame.want & wire.WANT_DATA:
            out.append(wire.Data(frame.addr, tuple(held[frame.addr]))
                       if held[frame.addr] else wire.Data(frame.addr, (), 1000, T0))
        return out
    return respond


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "gw.db") as s:
        yield s


def poller_on(store: Store) -> tuple[Poller, Counter]:
    stats: Counter[str] = Counter()
    return Poller(store, REGISTRY, stats, reply_timeout_s=0.2, time_sync=False,
                  clock=lambda: NOW), stats


def readings(first: int, count: int) -> list[Reading]:
    return [Reading.from_text(seq, 1, T0 + 60 * seq, "1.25") for seq in range(first, first + count)]


def one_frame(addr: int, rs: list[Reading]) -> bool:
    """``rs`` fit one DATA frame."""
    try:
        wire.encode_body(wire.Data(addr, tuple(rs)))
    except ValueError:
        return False
    return True


FULL = next(n for n in range(1, 100) if not one_frame(7, readings(1, n + 1)))  # a frame's worth


def test_a_cycles_short_data_is_stored_in_one_commit_then_acked(store: Store) -> None:
    port = ScriptedPort(bus({7: STAGE, 8: readings(10, 2)}))
    fp = framed(port, Counter())
    poller, stats = poller_on(store)
    commits = store.reading_commits
    assert poller.poll(fp, 7, hold=True) is False  # all it had: not polled again
    assert poller.poll(fp, 8, hold=True) is False
    assert port.sent(wire.Ack) == [] and store.unsent(10) == []  # nothing ACKed, nothing stored
    assert poller.store_held(fp) == []
    assert store.reading_commits == commits + 1
    assert {(r.station, r.reading.seq) for r in store.unsent(10)} == (
        {("SAN-01", s) for s in (41, 42, 43, 44)} | {("SAN-02", 10), ("SAN-02", 11)})
    assert [(a.addr, a.cumulative) for a in port.sent(wire.Ack)] == [(7, 45), (8, 12)]
    assert stats["readings_new"] == 6 and stats["acks"] == 2


def test_a_full_data_is_stored_and_acked_at_once_and_the_station_polled_again(
        store: Store) -> None:
    port = ScriptedPort(bus({7: readings(1, FULL)}))
    fp = framed(port, Counter())
    poller, _ = poller_on(store)
    assert poller.poll(fp, 7, hold=True) is True  # it may hold more
    assert [a.cumulative for a in port.sent(wire.Ack)] == [FULL + 1]
    assert len(store.unsent(100)) == FULL


def in_frames(respond):
    """``respond``'s stations answering a POLL with MORE as the firmware does (contracts 1.2):
    each frame as full as it fits, DATA_MORE while readings and frames are left, at most
    MAX_DATA_FRAMES frames."""
    def split(frame: wire.Frame) -> list[wire.Frame]:
        out: list[wire.Frame] = []
        for f in respond(frame):
            if type(f) is not wire.Data or not f.readings:
                out.append(f)
                continue
            left = list(f.readings)
            for n in range(wire.MAX_DATA_FRAMES):
                size = 1
                while size < len(left) and one_frame(f.addr, left[:size + 1]):
                    size += 1
                chunk, left = tuple(left[:size]), left[size:]
                more = left and n + 1 < wire.MAX_DATA_FRAMES
                out.append(wire.DataMore(f.addr, chunk) if more else wire.Data(f.addr, chunk))
                if not more:
                    break
        return out
    return split


def test_a_reply_in_frames_whose_last_had_room_is_held_like_a_short_data(store: Store) -> None:
    # More than a frame's worth, but the station stopped for want of readings: all it had.
    # Polled again, it would only send them again.
    port = ScriptedPort(in_frames(bus({7: readings(1, FULL + 3)})))
    fp = framed(port, Counter())
    poller, _ = poller_on(store)
    assert poller.poll(fp, 7, hold=True) is False
    assert port.sent(wire.Ack) == [] and poller.holds(7)
    assert poller.store_held(fp) == []
    assert [a.cumulative for a in port.sent(wire.Ack)] == [FULL + 4]
    assert len(store.unsent(100)) == FULL + 3


def test_a_reply_of_all_its_frames_is_stored_at_once_and_the_station_polled_again(
        store: Store) -> None:
    port = ScriptedPort(in_frames(bus({7: readings(1, 5 * FULL)})))
    fp = framed(port, Counter())
    poller, _ = poller_on(store)
    assert poller.poll(fp, 7, hold=True) is True  # it may hold more
    sent = len(store.unsent(1000))
    assert FULL * (wire.MAX_DATA_FRAMES - 1) < sent < 5 * FULL
    assert [a.cumulative for a in port.sent(wire.Ack)] == [sent + 1]


def test_a_station_polled_again_has_its_held_readings_acked_first(store: Store) -> None:
    port = ScriptedPort(bus({7: STAGE}))
    fp = framed(port, Counter())
    poller, _ = poller_on(store)
    poller.poll(fp, 7, hold=True)
    polls_before = len(port.sent(wire.Poll))
    poller.poll(fp, 7, hold=True)
    second_poll = [i for i, f in enumerate(port.received) if isinstance(f, wire.Poll)][polls_before]
    acks = [i for i, f in enumerate(port.received) if isinstance(f, wire.Ack)]
    assert acks and acks[0] < second_poll  # it would have sent them again
    assert len(store.unsent(10)) == 4


def test_holes_are_asked_for_after_what_was_held_is_stored_and_acked(store: Store) -> None:
    store.add("SAN-01", "santiago", [MessageReading(seq, "stage_m", T0 + 60 * seq, 1, 0, 0)
                                     for seq in (1, 2)])
    flash = tuple(readings(3, 4))  # 3..6; 3 and 4 never reached this store
    port = ScriptedPort(bus({7: list(flash[2:])}, next_seq=7, flash=flash))
    fp = framed(port, Counter())
    poller, stats = poller_on(store)
    poller.poll(fp, 7, hold=True)
    kinds = [type(f).__name__ for f in port.received]
    backfill = next(i for i, f in enumerate(port.received)
                    if isinstance(f, wire.Poll) and f.backfill)
    assert port.received[backfill].backfill == (3, 5)  # not 5 and 6: they were held, now stored
    assert "Ack" in kinds[:backfill]
    assert sorted(r.reading.seq for r in store.unsent(10)) == [1, 2, 3, 4, 5, 6]
    assert stats["readings_backfilled"] == 2


def test_a_failed_port_drops_what_was_held(store: Store) -> None:
    port = ScriptedPort(bus({7: STAGE}))
    fp = framed(port, Counter())
    poller, _ = poller_on(store)
    poller.poll(fp, 7, hold=True)
    poller.drop_held()
    assert poller.store_held(fp) == []
    assert store.unsent(10) == [] and port.sent(wire.Ack) == []  # the station keeps them


def reading(seq: int, mantissa: int = 1) -> MessageReading:
    return MessageReading(seq, "stage_m", T0 + seq, mantissa, -3, 0)


def test_one_batch_refused_is_its_own_failure(store: Store) -> None:
    outcomes = store.add_many([("A", "b", [reading(1)]), ("B", "b", [reading(1, 2**70)]),
                               ("C", "b", [reading(1), reading(2)])])
    assert outcomes[0] == Added(1, 0) and outcomes[2] == Added(2, 0)
    assert isinstance(outcomes[1], OverflowError)  # SQLite cannot hold it
    assert sorted((r.station, r.reading.seq) for r in store.unsent(10)) == [
        ("A", 1), ("C", 1), ("C", 2)]


def test_threads_storing_at_once_share_one_commit(tmp_path: Path) -> None:
    window_s = 2.0
    with Store(tmp_path / "gw.db", group_window_s=window_s) as store:
        stored_once, go = threading.Barrier(3), threading.Barrier(3)

        def link(station: str) -> None:
            store.add(station, "b", [reading(1)])  # each has stored lately: both are expected
            stored_once.wait()
            go.wait()
            store.add(station, "b", [reading(2)])

        threads = [threading.Thread(target=link, args=(s,)) for s in ("A", "B")]
        for thread in threads:
            thread.start()
        stored_once.wait()
        commits = store.reading_commits
        time.sleep(window_s + 0.1)  # a thread that stored within the window is not awaited
        go.wait()
        for thread in threads:
            thread.join(60)
        assert store.reading_commits == commits + 1
        assert len(store.unsent(10)) == 4


def test_no_reading_takes_more_than_max_reading_bytes() -> None:
    # The worst readings to encode: seq gaps, time jumps and values as long as the wire allows.
    step = (wire.MAX_SEQ - 1) // 10
    worst = [Reading(1 + i * step, 255, 0 if i % 2 else wire.MAX_TIME,
                     -wire.MAX_MANTISSA, -wire.MAX_EXPONENT, 0x7E) for i in range(8)]
    sizes = [len(wire.encode_body(wire.Data(7, tuple(worst[:n])))) for n in range(1, 9)]
    assert max(b - a for a, b in zip(sizes, sizes[1:])) <= MAX_READING_BYTES


# --- the link's commit cadence (link.py _commit_due) --------------------------------------


class Monotonic:
    """The link's monotonic clock, set by the test: which commit slot a cycle ends in."""

    def __init__(self, now: float) -> None:
        self.now = now


def link_on(store: Store, port: ScriptedPort, clock: Monotonic,
            commit_cycles: int = 2) -> SerialLink:
    config = LinkConfig("scripted", stations=(7, 8), poll_interval_s=5.0, reply_timeout_s=0.2,
                        commit_cycles=commit_cycles)
    link = SerialLink(config, store, REGISTRY, time_sync=False, open_port=lambda _: port,
                      clock=lambda: NOW, monotonic=lambda: clock.now)
    link._open()
    return link


def test_short_data_waits_for_the_next_commit_slot_and_its_station_is_not_polled_meanwhile(
        store: Store) -> None:
    clock = Monotonic(1000.0)  # slots of 2 cycles x 5 s: [1000, 1010)
    port = ScriptedPort(bus({7: STAGE, 8: readings(10, 2)}))
    link = link_on(store, port, clock)
    clock.now = 1001.0
    link._poll_cycle()
    polls = len(port.sent(wire.Poll))
    assert port.sent(wire.Ack) == [] and store.unsent(10) == []  # held for the slot's commit
    clock.now = 1006.0  # the next cycle, same slot: the stations are not asked again
    link._poll_cycle()
    assert len(port.sent(wire.Poll)) == polls and port.sent(wire.Ack) == []
    commits = store.reading_commits
    clock.now = 1011.0  # a new slot: one commit for both stations, then their ACKs
    link._poll_cycle()
    assert store.reading_commits == commits + 1 and len(store.unsent(10)) == 6
    assert [(a.addr, a.cumulative) for a in port.sent(wire.Ack)] == [(7, 45), (8, 12)]


def test_flood_mode_readings_are_committed_at_the_end_of_their_cycle(
        store: Store) -> None:
    clock = Monotonic(1000.0)
    event = [Reading(seq, 1, T0 + 60 * seq, 2500, -3, wire.EVENT) for seq in (5, 6)]
    port = ScriptedPort(bus({7: event, 8: readings(10, 2)}))
    link = link_on(store, port, clock, commit_cycles=6)
    clock.now = 1001.0
    link._poll_cycle()
    assert len(store.unsent(10)) == 4  # the ordinary ones went with them: one commit
    assert [(a.addr, a.cumulative) for a in port.sent(wire.Ack)] == [(7, 7), (8, 12)]


def test_commit_cycles_1_commits_every_cycle(store: Store) -> None:
    clock = Monotonic(1000.0)  # slots of one cycle: [1000, 1005)
    port = ScriptedPort(bus({7: STAGE, 8: readings(10, 2)}))
    link = link_on(store, port, clock, commit_cycles=1)
    clock.now = 1005.5
    link._poll_cycle()
    assert len(store.unsent(10)) == 6 and len(port.sent(wire.Ack)) == 2
