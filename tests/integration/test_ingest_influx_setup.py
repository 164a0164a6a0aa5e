"""`watershed influx setup` and `watershed influx downsample` against the real influxd 1.6.7."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from watershed.cli import main
from watershed.devservers import Influxd
from watershed.hydro.influxql import query
from watershed.ingest.config import IngestConfig
from watershed.hydro.influx_setup import continuous_queries, setup
from watershed.ingest.writer import V1Writer

pytestmark = pytest.mark.integration

HOUR = 1763676000  # 2025-11-20T22:00:00Z, an hour boundary


@pytest.fixture
def database(influxd: Influxd) -> Iterator[str]:
    """A name for a database that does not exist yet; dropped afterwards."""
    name = f"setup_{uuid.uuid4().hex[:10]}"
    yield name
    influxd.query(f'DROP DATABASE "{name}"')


def config(influxd: Influxd, database: str, **retention: object) -> IngestConfig:
    return IngestConfig.from_dict({"influx": {"url": influxd.url, "database": database},
                                   "retention": retention})


def policies(influxd: Influxd, database: str) -> dict[str, tuple[str, bool]]:
    [result] = influxd.query(f'SHOW RETENTION POLICIES ON "{database}"')
    return {row[0]: (row[1], row[4]) for row in result["series"][0]["values"]}


def cq_names(influxd: Influxd, database: str) -> set[str]:
    [result] = influxd.query("SHOW CONTINUOUS QUERIES")
    return {row[0] for s in result["series"] if s["name"] == database for row in s["values"]}


def test_setup_creates_everything_then_changes_nothing(influxd: Influxd, database: str) -> None:
    c = config(influxd, database)
    done = setup(c)
    assert done[0] == f'CREATE DATABASE "{database}"'
    # Raw kept forever in the default policy; rollups in "hourly", forever by default.
    assert policies(influxd, database) == {"autogen": ("0s", True), "hourly": ("0s", False)}
    assert cq_names(influxd, database) == set(continuous_queries(c))
    assert len(cq_names(influxd, database)) == 2
    assert setup(c) == []  # idempotent
    assert setup(c, dry_run=True) == []


def test_changed_retention_and_channels_are_applied(influxd: Influxd, database: str) -> None:
    setup(config(influxd, database))
    before = cq_names(influxd, database)
    changed = config(influxd, database, raw="520w", hourly="INF",
                     sum_channels=["rain_mm", "snow_mm"])
    planned = setup(changed, dry_run=True)
    assert cq_names(influxd, database) == before  # a dry run changes nothing
    done = setup(changed)
    assert done == planned
    assert [s.split(" ")[0] for s in done] == ["ALTER", "DROP", "DROP", "CREATE", "CREATE"]
    assert policies(influxd, database)["autogen"] == ("87360h0m0s", True)
    assert cq_names(influxd, database) == set(continuous_queries(changed))
    assert setup(changed) == []


def test_a_named_raw_policy_becomes_the_default(influxd: Influxd, database: str) -> None:
    c = IngestConfig.from_dict({"influx": {"url": influxd.url, "database": database,
                                           "retention_policy": "raw"},
                                "retention": {"raw": "52w"}})
    setup(c)
    assert policies(influxd, database) == {"autogen": ("0s", False), "raw": ("8736h0m0s", True),
                                           "hourly": ("0s", False)}
    assert setup(c) == []


def test_cli_setup_then_downsample_rolls_up_clean_values(
        influxd: Influxd, database: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ingest.toml"
    path.write_text(f'[influx]\nurl = "{influxd.url}"\ndatabase = "{database}"\n')
    assert main(["influx", "setup", "--config", str(path)]) == 0
    assert "4 changes" in capsys.readouterr().out  # database, hourly policy, two queries
    assert main(["influx", "setup", "--config", str(path)]) == 0
    assert "up to date" in capsys.readouterr().out

    V1Writer(influxd.url, database).write([
        f"readings,basin=santiago,channel=stage_m,station=SAN-01 value=1.25,flags=0i {HOUR}",
        f"readings,basin=santiago,channel=stage_m,station=SAN-01 value=1.5,flags=128i "
        f"{HOUR + 900}",
        # a spike: kept raw, left out of the rollup
        f"readings,basin=santiago,channel=stage_m,station=SAN-01 value=9.75,flags=16i "
        f"{HOUR + 1800}",
        f"readings,basin=santiago,channel=stage_m,station=SAN-01 value=1.0,flags=0i {HOUR + 3600}",
        f"readings,basin=santiago,channel=rain_mm,station=SAN-01 value=0.2,flags=0i {HOUR}",
        f"readings,basin=santiago,channel=rain_mm,station=SAN-01 value=0.4,flags=0i {HOUR + 900}",
        f"readings,basin=santiago,channel=rain_mm,station=SAN-01 flags=1i {HOUR + 1800}",
    ])
    assert main(["influx", "downsample", "--config", str(path), "--start", str(HOUR),
                 "--end", str(HOUR + 7200)]) == 0
    series = query(influxd.url, database, 'SELECT * FROM "hourly"."readings_hourly" '
                                          "GROUP BY channel")
    got = {(tags["channel"], row["time"]): {k: v for k, v in row.items()
                                            if v is not None and k != "time"}
           for tags, rows in series for row in rows}
    assert got == {
        ("stage_m", HOUR): {"mean": Decimal("1.375"), "min": Decimal("1.25"),
                            "max": Decimal("1.5"), "count": 2, "basin": "santiago",
                            "station": "SAN-01"},
        ("stage_m", HOUR + 3600): {"mean": 1, "min": 1, "max": 1, "count": 1,
                                   "basin": "santiago", "station": "SAN-01"},
        ("rain_mm", HOUR): {"sum": Decimal("0.6000000000000001"), "count": 2,
                            "basin": "santiago", "station": "SAN-01"},
    }


def test_setup_reports_an_unreachable_influxdb(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from watershed.devservers import free_port
    path = tmp_path / "ingest.toml"
    path.write_text(f'[influx]\nurl = "http://127.0.0.1:{free_port()}"\n')
    assert main(["influx", "setup", "--config", str(path)]) == 1
    assert "watershed influx setup" in capsys.readouterr().err
