"""The property tests' settings (tests/conftest.py): an example is never failed for its time."""

import time

from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=2)
@given(st.booleans())
def test_a_slow_example_is_not_failed_for_its_time(_: bool) -> None:
    # 0.25 s is over Hypothesis's default deadline (0.2 s): with it this would fail as
    # DeadlineExceeded, as any example can on a busy machine.
    time.sleep(0.25)


def test_the_loaded_profile_sets_no_deadline() -> None:
    assert settings.default.deadline is None
