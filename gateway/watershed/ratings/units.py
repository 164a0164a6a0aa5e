"""Stage and discharge units: stations measure metres and report m³/s; USGS ratings are in feet
and ft³/s. Both factors are exact by definition (1 ft = 0.3048 m)."""

from __future__ import annotations

from decimal import Decimal

from .model import significant

FOOT_M = Decimal("0.3048")
CUBIC_FOOT_M3 = FOOT_M ** 3  # 0.028316846592


def stage_from_m(stage_m: float, unit: str) -> float:
    return stage_m / float(FOOT_M) if unit == "ft" else stage_m


def discharge_to_m3s(value: Decimal, unit: str) -> Decimal:
    return significant(value * CUBIC_FOOT_M3) if unit == "ft3/s" else value
