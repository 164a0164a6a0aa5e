"""InfluxQL queries over the HTTP ``/query`` endpoint (InfluxDB 1.x, 2.x via DBRP, 3.x).

Numbers are parsed as decimals, so a value reads back exactly as it was written.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from ..contracts.influx import FIELDS, absent_fields

Row = dict[str, Any]
T = TypeVar("T")

# No proxies from the environment: the database is reached directly (as the writers do).
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class QueryError(RuntimeError):
    """InfluxDB answered the query with an error."""


def quote_ident(name: str) -> str:
    """An InfluxQL identifier (database, retention policy, measurement) in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(text: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True, slots=True)
class Series:
    name: str  # the measurement (for SHOW CONTINUOUS QUERIES: the database)
    tags: dict[str, str]
    rows: list[Row]


def query(url: str, database: str, q: str, *, epoch: str = "s", username: str = "",
          password: str = "", timeout_s: float = 30) -> list[tuple[dict[str, str], list[Row]]]:
    """Run ``q``; returns one ``(tags, rows)`` per series, rows as column → value dicts."""
    return [(s.tags, s.rows) for s in query_series(url, database, q, epoch=epoch,
                                                    username=username, password=password,
                                                    timeout_s=timeout_s)]


def asked_whole(ask: Callable[[], T], rows: Callable[[T], Iterable[Row]],
                fields: tuple[str, ...] = FIELDS, tries: int = 20, wait_s: float = 0.1
                ) -> tuple[T, list[Row]]:
    """``ask()`` (a query) asked again while a row of its answer (``rows``) lacks one of
    ``fields``: the point the ingest is writing as we read shows in part (InfluxDB applies a
    point's fields one by one, see absent_fields). The last answer, and its rows still in part
    after ``tries``: none unless something other than the ingest wrote them so."""
    for attempt in range(tries):
        answer = ask()
        partial = [row for row in rows(answer) if absent_fields(row, fields)]
        if not partial or attempt == tries - 1:
            return answer, partial
        time.sleep(wait_s)
    raise ValueError("tries must be at least 1")


def in_part(partial: list[Row], tries: int, fields: tuple[str, ...] = FIELDS) -> str:
    """One line on the points still in part after ``tries`` (asked_whole)."""
    first = partial[0]
    which = "".join(f"{first[tag]} " for tag in ("station", "channel") if first.get(tag))
    return (f"InfluxDB still shows points in part after {tries} tries: {len(partial)}, the "
            f"first {which}at {first['time']} without {', '.join(absent_fields(first, fields))}")


def whole_rows(ask: Callable[[], list[tuple[dict[str, str], list[Row]]]],
               tries: int = 20, wait_s: float = 0.1) -> list[Row]:
    """The rows of ``ask()`` (a query of FIELDS), whole (asked_whole); QueryError if one is
    still in part after ``tries``."""
    answer, partial = asked_whole(ask, lambda series: (r for _, rows in series for r in rows),
                                  FIELDS, tries, wait_s)
    if partial:
        raise QueryError(in_part(partial, tries))
    return [row for _, rows in answer for row in rows]


def query_series(url: str, database: str, q: str, *, epoch: str = "s", username: str = "",
                 password: str = "", timeout_s: float = 30) -> list[Series]:
    """Run ``q`` (one or more statements, ``;``-separated); every series of every result.
    Raises QueryError when InfluxDB reports an error, OSError when it cannot be reached."""
    return [s for result in query_results(url, database, q, epoch=epoch, username=username,
                                          password=password, timeout_s=timeout_s)
            for s in result]


def query_results(url: str, database: str, q: str, *, epoch: str = "s", username: str = "",
                  password: str = "", timeout_s: float = 30) -> list[list[Series]]:
    """Run ``q``; the series of each statement, in the statements' order."""
    params = urllib.parse.urlencode({"db": database, "q": q, "epoch": epoch})
    # In the body, not the URL: a statement may hold a password (CREATE USER), and URLs are logged.
    request = urllib.request.Request(f"{url.rstrip('/')}/query", data=params.encode(),
                                     method="POST")
    if username:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with OPENER.open(request, timeout=timeout_s) as response:
            body = json.loads(response.read(), parse_float=Decimal)
    except urllib.error.HTTPError as e:
        # 1.x answers a statement it cannot parse, or a missing database, with 4xx {"error": …}
        with e:
            raw = e.read().decode(errors="replace")
        try:
            message = json.loads(raw).get("error") or raw
        except (ValueError, AttributeError):
            message = raw.strip() or str(e.reason)
        raise QueryError(f"HTTP {e.code}: {message}") from None
    out: list[list[Series]] = []
    for result in body.get("results", []):
        if "error" in result:
            raise QueryError(result["error"])
        series_out = []
        for series in result.get("series", []):
            columns = series["columns"]
            rows = [dict(zip(columns, values)) for values in series.get("values", [])]
            series_out.append(Series(series.get("name", ""), series.get("tags", {}), rows))
        out.append(series_out)
    return out
