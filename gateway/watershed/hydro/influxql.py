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
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..contracts.influx import absent_fields

Row = dict[str, Any]

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


def whole_rows(ask: Callable[[], list[tuple[dict[str, str], list[Row]]]],
               tries: int = 20, wait_s: float = 0.1) -> list[Row]:
    """The rows of ``ask()`` (a query of FIELDS), asked again while a point shows in part: the
    one the ingest is writing as we read (InfluxDB applies its fields one by one, see
    absent_fields) would lack flags or seq. QueryError if one still does after ``tries``."""
    for _ in range(tries):
        rows = [row for _, rows in ask() for row in rows]
        partial = [row for row in rows if absent_fields(row)]
        if not partial:
            return rows
        time.sleep(wait_s)
    first = partial[0]
    raise QueryError(f"InfluxDB still shows points in part after {tries} tries: "
                     f"{len(partial)}, the first at {first['time']} without "
                     f"{', '.join(absent_fields(first))}")


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
