"""One Backoff for every retry loop: stateful (next_delay/reset) and stateless (delay)."""

from __future__ import annotations

import random

from watershed.backoff import Backoff


def test_next_delay_doubles_to_the_cap_and_reset_starts_again() -> None:
    b = Backoff(initial_s=0.5, max_s=3.0)
    assert [b.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next_delay() == 0.5


def test_next_delay_and_delay_agree_and_jitter_only_shortens() -> None:
    b = Backoff(initial_s=1.0, max_s=8.0, jitter=0.5, rng=random.Random(7))
    for attempt in range(6):
        ceiling = min(8.0, 2.0 ** attempt)
        assert ceiling / 2 <= b.next_delay() <= ceiling
        assert ceiling / 2 <= b.delay(attempt) <= ceiling


def test_a_long_outage_neither_overflows_nor_passes_the_cap() -> None:
    b = Backoff(initial_s=0.5, max_s=30.0)
    assert b.delay(5000) == 30.0
    for _ in range(2000):
        b.next_delay()
    assert b.next_delay() == 30.0
