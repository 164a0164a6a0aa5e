"""V1Writer against a real influxd 1.x: exact values land, and each failure is classified right."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.fixtures.servers import InfluxdFactory
from watershed.devservers import Influxd
from watershed.hydro.influxql import query
from watershed.ingest.writer import RejectedWriteError, RetryableWriteError, V1Writer

pytestmark = pytest.mark.integration

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "mqtt_v1.json").read_text()
                     )["messages"]
VECTOR = VECTORS[0]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_vector_lines_read_back_exactly(influxd: Influxd, fresh_influx_db: str,
                                        vector: dict) -> None:
    V1Writer(influxd.url, fresh_influx_db).write(vector["lines"])
    [(_, rows)] = query(influxd.url, fresh_influx_db,
                        "SELECT channel, value, flags, seq FROM readings")
    got = {(r["channel"], r["time"], r["seq"]): (r["value"], r["flags"]) for r in rows}
    want = {(ch, ts, seq): (None if flags & 1 else Decimal(m).scaleb(e), flags)
            for seq, ch, ts, m, e, flags in vector["readings"]}
    assert got == want


def test_field_type_conflict_is_rejected_with_influx_message(
        influxd: Influxd, fresh_influx_db: str) -> None:
    writer = V1Writer(influxd.url, fresh_influx_db)
    writer.write(VECTOR["lines"][:1])
    with pytest.raises(RejectedWriteError) as e:
        # Field types are fixed per shard in 1.x: same week, string instead of float.
        writer.write(['readings,basin=b,channel=stage_m,station=S flags=0i,value="high" '
                      '1763676900'])
    assert e.value.status == 400
    assert "field type conflict" in e.value.message


def test_unparseable_line_is_rejected(influxd: Influxd, fresh_influx_db: str) -> None:
    with pytest.raises(RejectedWriteError, match="unable to parse"):
        V1Writer(influxd.url, fresh_influx_db).write(["readings value="])


def test_missing_database_is_retryable(influxd: Influxd) -> None:
    # Not the data's fault: once the database exists the same batch goes through.
    with pytest.raises(RetryableWriteError) as e:
        V1Writer(influxd.url, "no_such_db").write(VECTOR["lines"])
    assert e.value.status == 404
    assert "database not found" in e.value.message


def test_kept_alive_connection_outlives_influxd_restarts(influxd_factory: InfluxdFactory) -> None:
    server = influxd_factory()
    server.query('CREATE DATABASE "w"')
    lines = VECTOR["lines"]
    writer = V1Writer(server.url, "w")
    writer.write(lines[:2])
    server.restart()  # the connection the writer keeps is gone
    writer.write(lines[2:])  # no error: sent again on a new connection
    server.stop()
    with pytest.raises(RetryableWriteError) as e:
        writer.write(lines)  # down: for the caller to retry
    assert e.value.status is None
    server.start()
    writer.write(lines)
    writer.close()
    [(_, rows)] = query(server.url, "w", "SELECT count(flags) FROM readings")
    assert rows[0]["count"] == len(lines)
