"""Load every registered station's rating files at start, so a broken rating stops the service
with a message naming the file instead of failing one message at a time."""

from __future__ import annotations

from ..ratings.load import load_rating
from ..ratings.model import RatingError
from ..ratings.station import StationRatings
from .config import ConfigError, IngestConfig


def load_station_ratings(config: IngestConfig) -> dict[str, StationRatings]:
    out = {}
    for n, entry in enumerate(config.stations):
        if not entry.ratings:
            continue
        try:
            ratings = tuple(load_rating(path) for path in entry.ratings)
        except RatingError as e:
            raise ConfigError([f"stations[{n}].ratings: {p}" for p in e.problems]) from e
        out[entry.id] = StationRatings(entry.id, ratings)
    return out
