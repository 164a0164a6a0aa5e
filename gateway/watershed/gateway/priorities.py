"""Which stored readings the gateway gives up first when its store is full.

Lowest first: a battery voltage is worth less to a hydrologist than a rain total, and a rain
total less than the river stage. Readings taken in event (flood) mode outrank everything: they
are the reason the network exists.
"""

from __future__ import annotations

from watershed.contracts.channels import NUMBERS
from watershed.contracts.wire import EVENT

HOUSEKEEPING = 0  # catalogue 32-47: battery, solar panel, logger temperature
WEATHER = 1  # catalogue 16-31
OTHER = 2  # station-specific channels (128-255) and catalogue numbers not classed above
RIVER = 3  # catalogue 1-15: stage, discharge, water temperature ...
FLOOD_EVENT = 4  # any channel, taken in event mode (flag 0x80)

NAMES = {HOUSEKEEPING: "housekeeping", WEATHER: "weather", OTHER: "other", RIVER: "river",
         FLOOD_EVENT: "flood_event"}


def shed_priority(channel: str, flags: int) -> int:
    """The priority a reading is stored with; lower is shed first."""
    if flags & EVENT:
        return FLOOD_EVENT
    number = NUMBERS.get(channel)
    if number is None:
        return OTHER
    if 1 <= number <= 15:
        return RIVER
    if 16 <= number <= 31:
        return WEATHER
    if 32 <= number <= 47:
        return HOUSEKEEPING
    return OTHER
