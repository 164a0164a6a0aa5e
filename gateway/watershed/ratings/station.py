"""A station's ratings over time, and discharge derived from its stage readings.

Ratings are revised after floods: a station has several, each effective over its periods. The
rating for a reading is the one effective at the reading's time whose period began last (a later
revision supersedes an open-ended earlier one). With none effective no discharge is derived: a
number from the wrong rating would be worse than none, and ``watershed recompute`` fills it in
once the rating is added.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..contracts.wire import MISSING, OUT_OF_RANGE
from .model import Rating
from .units import discharge_to_m3s, stage_from_m


@dataclass(frozen=True, slots=True)
class DerivedDischarge:
    value: Decimal | None  # m³/s; None when out of range or the stage is missing
    flags: int
    rating_id: str


@dataclass(frozen=True, slots=True)
class StationRatings:
    station: str
    ratings: tuple[Rating, ...]

    def at(self, t: int) -> Rating | None:
        best: tuple[int, int, Rating] | None = None
        for order, rating in enumerate(self.ratings):
            begins = [p.begin for p in rating.periods if p.contains(t)]
            if not rating.periods:
                begins = [-2**63]  # always effective, superseded by any dated rating
            if begins:
                key = (max(begins), order, rating)
                if best is None or key[:2] > best[:2]:
                    best = key
        return best[2] if best else None

    def derive(self, stage_m: Decimal | None, stage_flags: int, t: int) -> DerivedDischarge | None:
        """Discharge from one stage reading (metres), None when no rating is effective at t.

        The stage's quality flags carry over (a suspect stage gives a suspect discharge). A
        stage outside the rating gives no value, flagged out_of_range (and missing, since the
        contract keeps "no value" and the missing flag together).
        """
        rating = self.at(t)
        if rating is None:
            return None
        if stage_m is None or stage_flags & MISSING:
            return DerivedDischarge(None, stage_flags | MISSING, rating.rating_id)
        result = rating.discharge(stage_from_m(float(stage_m), rating.stage_unit), at=t)
        if result.discharge is None:
            return DerivedDischarge(None, stage_flags | MISSING | OUT_OF_RANGE, rating.rating_id)
        return DerivedDischarge(discharge_to_m3s(result.discharge, rating.discharge_unit),
                                stage_flags, rating.rating_id)
