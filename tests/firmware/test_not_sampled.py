"""Slots the station could not sample leave a trace (issue 16, contracts 1.6 ``not_sampled_s``):
after a power cut the station reports at boot one reading on channel 35 whose value is the
length of the gap in seconds, ending at its time (firmware/gap.py); a boot on a clock that is
not plausible reports nothing rather than a wrong gap. Real firmware in the MicroPython unix
port, driven by tests/firmware/engine_mp.py; the report is read back with the gateway's codec
from a DATA frame."""

from __future__ import annotations

from typing import Any

import pytest

from tests.firmware.test_station_engine import (ADDR, BATTERY, STAGE, T0, compiled, frames, run,
                                                station_config)
from watershed.contracts import wire as gw
from watershed.contracts.channels import NOT_SAMPLED, channel_name

pytestmark = pytest.mark.firmware
__all__ = ["compiled"]
GAP = 35
HOURLY = dict(BATTERY, interval_s=120)


def gaps(out: Any) -> list[tuple[int, ...]]:
    """(time, seconds, flags) of every gap the station reported."""
    return [(r[2], r[3], r[5]) for r in out.channel(GAP) if r[4] == 0]


def test_a_power_cut_is_reported_once_at_boot_as_one_reading(micropython, compiled, tmp_path):
    cfg = station_config(tmp_path, [STAGE, HOURLY])
    steps: list[dict[str, Any]] = [{"adc": {"26": [2000], "28": [12600]}}, {"cycles": 3}]
    before = run(micropython, compiled, tmp_path, steps, cfg)
    assert [r[2] for r in before.channel(1)] == [T0 + 60, T0 + 120, T0 + 180]
    assert gaps(before) == [], "no gap while the station samples every slot"
    # The power comes back at T0 + 605: the slots from T0 + 240 were not sampled.
    cfg["board"]["sim_epoch"] = T0 + 605
    steps = [{"adc": {"26": [2000], "28": [12600]}}, {"clock": T0 + 605}, {"cycles": 2},
             frames(gw.Poll(ADDR, gw.WANT_DATA))]
    after = run(micropython, compiled, tmp_path, steps, cfg)
    assert gaps(after) == [(T0 + 605, 605 - 240, gw.CLOCK_UNSYNCED)]
    assert "I not sampled from %d to %d" % (T0 + 240, T0 + 605) in after.lines
    assert [r[2] for r in after.channel(1)] == [T0 + 660, T0 + 720], "sampling goes on"
    sent = [r for f in after.of(gw.Data) for r in f.readings if r.channel == GAP]
    assert [(r.time, r.value, r.flags) for r in sent] == [(T0 + 605, 365, gw.CLOCK_UNSYNCED)]
    assert channel_name(GAP) == NOT_SAMPLED
    # A reboot without a gap reports nothing, and the old report is not repeated.
    cfg["board"]["sim_epoch"] = T0 + 730
    again = run(micropython, compiled, tmp_path, [{"cycles": 1}], cfg)
    assert gaps(again) == [] and [r[2] for r in again.channel(1)] == [T0 + 780]


def test_a_boot_on_an_impossible_clock_reports_no_gap(micropython, compiled, tmp_path):
    cfg = station_config(tmp_path, [STAGE])
    run(micropython, compiled, tmp_path, [{"adc": {"26": [2000]}}, {"cycles": 2}], cfg)
    # The RTC lost its backup battery in the cut: the station boots in 1970 and samples on.
    cfg["board"]["sim_epoch"] = 100000
    steps: list[dict[str, Any]] = [{"adc": {"26": [2000]}}, {"cycles": 2},
                                   frames(gw.TimeSync(ADDR, (T0 + 900) * 1000)),
                                   {"clock": T0 + 905}, {"cycles": 1}]
    blind = run(micropython, compiled, tmp_path, steps, cfg)
    assert gaps(blind) == [], "no gap can be measured: the slots stay unaccounted, not guessed"
    assert [r[2] for r in blind.channel(1)][-1] == T0 + 960, "sampling goes on after TIME"
