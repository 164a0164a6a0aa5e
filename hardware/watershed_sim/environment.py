"""The weather and the river the sensors see: models that produce each sensor's truth.

    rain events ─▶ linear reservoir (runoff) ─▶ discharge Q ─▶ rating curve inverted ─▶ stage h
    sun ─▶ diurnal air temperature ─▶ relative humidity;  barometric pressure with its tide

Every model is a pure function of simulated time (Unix seconds), so a truth value can be asked
for any instant, in any order, and is the same each time.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RainEvent:
    start: float  # Unix seconds
    duration_s: float
    intensity_mm_h: float

    def rate_mm_h(self, t: float) -> float:
        return self.intensity_mm_h if self.start <= t < self.start + self.duration_s else 0.0


@dataclass(frozen=True)
class Rating:
    """One-segment stage–discharge rating Q = C·(h − e)^b (e: gage height of zero flow)."""

    c: float = 12.0
    e: float = 0.15
    b: float = 1.6

    def discharge(self, stage_m: float) -> float:
        return self.c * max(0.0, stage_m - self.e) ** self.b

    def stage(self, discharge_m3s: float) -> float:
        return self.e + (max(0.0, discharge_m3s) / self.c) ** (1.0 / self.b)


@dataclass(frozen=True)
class Catchment:
    """A linear reservoir: storage S = k·Q, so dQ/dt = (runoff − Q) / k.

    Runoff is ``runoff_coeff`` of the rain on ``area_km2``; ``base_m3s`` is the dry-season flow.
    Integrated exactly between steps (rain is constant within a step), on a fixed grid from
    ``start`` so every query of the same time gives the same answer.
    """

    area_km2: float = 45.0
    k_s: float = 3 * 3600.0
    runoff_coeff: float = 0.6
    base_m3s: float = 1.2
    rain: Sequence[RainEvent] = field(default_factory=tuple)
    rating: Rating = field(default_factory=Rating)
    step_s: float = 300.0

    def rain_mm_h(self, t: float) -> float:
        return float(sum(e.rate_mm_h(t) for e in self.rain))

    def wet_windows(self) -> list[tuple[float, float]]:
        """The windows ``[from, to)`` it rains in: none of the events' rain falls outside."""
        return [(e.start, e.start + e.duration_s) for e in self.rain]

    def rain_mm(self, t0: float, t1: float) -> float:
        """Rain that fell in [t0, t1), exact for events' rectangular intensity."""
        total = 0.0
        for e in self.rain:
            overlap = min(t1, e.start + e.duration_s) - max(t0, e.start)
            if overlap > 0:
                total += e.intensity_mm_h * overlap / 3600.0
        return total


class River:
    """Discharge and stage over time from a Catchment; memoises the integration grid."""

    def __init__(self, catchment: Catchment, start: float) -> None:
        self.catchment = catchment
        self.start = start
        self._times = [start]
        self._flows = [catchment.base_m3s]
        self._lock = threading.Lock()  # sensors of several stations ask from their own threads

    def _extend_to(self, t: float) -> None:
        c = self.catchment
        decay = math.exp(-c.step_s / c.k_s)
        m3s_per_mm_h = c.area_km2 * 1e6 / 1000 / 3600 * c.runoff_coeff
        while self._times[-1] < t:
            t0 = self._times[-1]
            inflow = c.base_m3s + m3s_per_mm_h * c.rain_mm(t0, t0 + c.step_s) * 3600 / c.step_s
            self._flows.append(inflow + (self._flows[-1] - inflow) * decay)
            self._times.append(t0 + c.step_s)

    def discharge_m3s(self, t: float) -> float:
        if t <= self.start:
            return self.catchment.base_m3s
        with self._lock:
            self._extend_to(t)
        i = bisect.bisect_right(self._times, t) - 1
        if i + 1 >= len(self._times):
            return self._flows[i]
        t0, t1 = self._times[i], self._times[i + 1]
        return self._flows[i] + (self._flows[i + 1] - self._flows[i]) * (t - t0) / (t1 - t0)

    def stage_m(self, t: float) -> float:
        return self.catchment.rating.stage(self.discharge_m3s(t))


@dataclass(frozen=True)
class Weather:
    """Diurnal air temperature (warmest at 14:00 local), humidity that falls as it warms, and
    pressure with its semidiurnal atmospheric tide (peaks near 10:00 and 22:00)."""

    utc_offset_h: float = -5.0  # Ecuador / Peru
    mean_air_c: float = 11.0  # páramo at ~3500 m
    air_swing_c: float = 6.0
    dewpoint_c: float = 6.0
    pressure_hpa: float = 655.0  # ~3500 m
    tide_hpa: float = 1.2

    def _local_hour(self, t: float) -> float:
        return ((t / 3600.0) + self.utc_offset_h) % 24.0

    def air_temp_c(self, t: float) -> float:
        return self.mean_air_c + self.air_swing_c / 2 * math.cos(
            2 * math.pi * (self._local_hour(t) - 14.0) / 24.0)

    def rh_pct(self, t: float) -> float:
        # Magnus formula: RH from the dew point and the air temperature.
        def es(c: float) -> float:
            return 6.112 * math.exp(17.62 * c / (243.12 + c))
        return min(100.0, 100.0 * es(self.dewpoint_c) / es(self.air_temp_c(t)))

    def pressure_hpa_at(self, t: float) -> float:
        return self.pressure_hpa + self.tide_hpa * math.cos(
            2 * math.pi * (self._local_hour(t) - 10.0) / 12.0)

    def water_temp_c(self, t: float, stage_m: float) -> float:
        # Lags and damps the air; storm water is colder.
        return 0.5 * self.air_temp_c(t - 3 * 3600) + 4.0 - 0.8 * max(0.0, stage_m - 0.5)


class Environment:
    """Named truth quantities, the vocabulary scenario sensors use as ``source``."""

    QUANTITIES = ("stage_m", "discharge_m3s", "velocity_ms", "rain_mm_h", "air_temp_c",
                  "rh_pct", "pressure_hpa", "pressure_kpa", "water_temp_c", "battery_v")
    CHANNEL_WIDTH_M = 12.0  # a rectangular section: mean velocity = Q / (width x stage)

    def __init__(self, river: River, weather: Weather) -> None:
        self.river = river
        self.weather = weather

    def value(self, quantity: str, t: float) -> float:
        if quantity == "stage_m":
            return self.river.stage_m(t)
        if quantity == "discharge_m3s":
            return self.river.discharge_m3s(t)
        if quantity == "velocity_ms":
            depth = max(self.river.stage_m(t), 0.05)
            return self.river.discharge_m3s(t) / (self.CHANNEL_WIDTH_M * depth)
        if quantity == "rain_mm_h":
            return self.river.catchment.rain_mm_h(t)
        if quantity == "air_temp_c":
            return self.weather.air_temp_c(t)
        if quantity == "rh_pct":
            return self.weather.rh_pct(t)
        if quantity == "pressure_hpa":
            return self.weather.pressure_hpa_at(t)
        if quantity == "pressure_kpa":
            return self.weather.pressure_hpa_at(t) / 10
        if quantity == "water_temp_c":
            return self.weather.water_temp_c(t, self.river.stage_m(t))
        if quantity == "battery_v":
            sun = max(0.0, math.sin(2 * math.pi * (self.weather._local_hour(t) - 6.0) / 24.0))
            return 12.4 + 0.8 * sun
        raise KeyError(quantity)
