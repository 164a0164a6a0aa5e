"""InfluxQL queries over the HTTP ``/query`` endpoint (InfluxDB 1.x, 2.x via DBRP, 3.x).

Numbers are parsed as decimals, so a value reads back exactly as it was written.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from decimal import Decimal
from typing import Any

Row = dict[str, Any]


class QueryError(RuntimeError):
    """InfluxDB answered the query with an error."""


def query(url: str, database: str, q: str, *, epoch: str = "s", username: str = "",
          password: str = "", timeout_s: float = 30) -> list[tuple[dict[str, str], list[Row]]]:
    """Run ``q``; returns one ``(tags, rows)`` per series, rows as column → value dicts."""
    params = urllib.parse.urlencode({"db": database, "q": q, "epoch": epoch})
    request = urllib.request.Request(f"{url.rstrip('/')}/query?{params}", method="POST")
    if username:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        body = json.loads(response.read(), parse_float=Decimal)
    series_out = []
    for result in body.get("results", []):
        if "error" in result:
            raise QueryError(result["error"])
        for series in result.get("series", []):
            columns = series["columns"]
            rows = [dict(zip(columns, values)) for values in series["values"]]
            series_out.append((series.get("tags", {}), rows))
    return series_out
