"""Read a rating file of either kind, chosen by its name: ``.toml`` or USGS RDB (anything else)."""

from __future__ import annotations

from pathlib import Path

from .model import Rating, RatingError
from .rdb import parse_rdb
from .tomlfile import parse_toml_rating


def load_rating(path: str | Path) -> Rating:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RatingError(f"{path}: cannot read: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise RatingError(f"{path}: not UTF-8 text") from e
    if path.suffix.lower() == ".toml":
        return parse_toml_rating(text, str(path))
    return parse_rdb(text, str(path))
