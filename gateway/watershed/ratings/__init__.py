"""Stage–discharge ratings: read them (USGS RDB base and exsa, TOML segments), expand them, and
turn stage into discharge that says which rating produced it.

Modules, one job each: ``model`` (a rating and its arithmetic), ``rdb`` (USGS RDB files),
``tomlfile`` (ratings written by hand as TOML segments), ``table`` (the expanded table in the USGS
exsa layout), ``station`` (a station's ratings over time, the rating effective at a moment),
``units`` (ft ↔ m), ``load`` (a rating file of either kind).
"""

from .model import Breakpoint, DischargeResult, Period, Rating, RatingError, Shift

__all__ = ["Breakpoint", "DischargeResult", "Period", "Rating", "RatingError", "Shift"]
