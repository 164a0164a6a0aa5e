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


def test_setup_with_auth_makes_a_write_only_ingest_user_and_a_read_only_reader(
        tmp_path: Path, influxd_factory, capsys) -> None:
    """Authentication on: `setup --admin-user` makes the ingest's user (from its config) able to
    write and not read, and a reader able to read and not write; no password is printed."""
    from watershed.hydro.influxql import QueryError
    from watershed.ingest.writer import RetryableWriteError

    server = influxd_factory(admin=("admin", "adm1n-Pw"))
    secrets = {"ingest-influx-password": "wr1ter-Pw", "admin-pw": "adm1n-Pw",
               "reader-pw": "re4der-Pw"}
    for name, secret in secrets.items():
        (tmp_path / name).write_text(secret + "\n")
    path = tmp_path / "ingest.toml"
    path.write_text(f'[influx]\nurl = "{server.url}"\ndatabase = "watershed"\n'
                    'username = "ingest"\npassword_file = "ingest-influx-password"\n')
    argv = ["influx", "setup", "--config", str(path), "--admin-user", "admin",
            "--admin-password-file", str(tmp_path / "admin-pw"), "--reader", "grafana",
            "--reader-password-file", str(tmp_path / "reader-pw")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "GRANT WRITE ON \"watershed\" TO \"ingest\"" in out
    assert "GRANT READ ON \"watershed\" TO \"grafana\"" in out
    assert not any(secret in out for secret in secrets.values())
    assert main(argv) == 0
    assert capsys.readouterr().out.endswith("database watershed: up to date\n")  # idempotent

    line = "readings,station=SAN-01,channel=stage_m value=1.5 1763676900"
    V1Writer(server.url, "watershed", username="ingest",
             password=secrets["ingest-influx-password"]).write([line])
    with pytest.raises(QueryError, match="not authorized"):
        query(server.url, "watershed", "SELECT * FROM readings", username="ingest",
              password=secrets["ingest-influx-password"])
    [(_, rows)] = query(server.url, "watershed", "SELECT value FROM readings",
                        username="grafana", password=secrets["reader-pw"])
    assert [r["value"] for r in rows] == [Decimal("1.5")]
    with pytest.raises(RetryableWriteError, match="403"):
        V1Writer(server.url, "watershed", username="grafana",
                 password=secrets["reader-pw"]).write([line])
    with pytest.raises(QueryError):
        query(server.url, "watershed", "SELECT value FROM readings")  # nobody
    # A hydrologist's command line holds no password: a file (or $WATERSHED_INFLUX_PASSWORD).
    capsys.readouterr()
    assert main(["query", "--url", server.url, "--user", "grafana", "--password-file",
                 str(tmp_path / "reader-pw"), "--start", "1763676000"]) == 0
    assert "1.5" in capsys.readouterr().out


def test_setup_refuses_to_limit_an_admin(tmp_path: Path, influxd_factory, capsys) -> None:
    server = influxd_factory(admin=("admin", "adm1n-Pw"))
    (tmp_path / "pw").write_text("adm1n-Pw")
    path = tmp_path / "ingest.toml"
    path.write_text(f'[influx]\nurl = "{server.url}"\nusername = "root"\npassword_env = "HOME"\n')
    server.query("CREATE USER \"root\" WITH PASSWORD 'x' WITH ALL PRIVILEGES")
    assert main(["influx", "setup", "--config", str(path), "--admin-user", "admin",
                 "--admin-password-file", str(tmp_path / "pw")]) == 1
    assert "user root is an admin" in capsys.readouterr().err
