"""`watershed influx setup`: the database, its retention policies and the hourly rollups (1.x).

Idempotent: it reads what exists and changes only what differs, so it is safe to run on every
deploy. Raw readings live in the database's default retention policy (``autogen`` unless
``influx.retention_policy`` names another): data already written stays where queries look.
Rollups go to the ``hourly`` policy, measurement ``readings_hourly``, made by continuous queries
whose names carry a hash of their text: a changed config gives a new name, and the old query is
dropped; an unchanged one is left alone.

With authentication on, ``users`` makes the database's users, run as an admin: the ingest's
(``influx.username``) with WRITE only, and readers (hydrologists, Grafana) with READ only. A
user that exists keeps its password; its privilege on the database is set to exactly the one
wanted. Passwords never appear in what is printed (``PASSWORD '…'``), nor in URLs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..contracts.influx import MEASUREMENT
from .influxql import Series, quote_ident, quote_string, query_series
from ..ingest.config import IngestConfig

HOURLY_POLICY = "hourly"
HOURLY_MEASUREMENT = "readings_hourly"
CQ_PREFIX = "readings_hourly_"
DEFAULT_RAW_POLICY = "autogen"  # what CREATE DATABASE makes on 1.x
# Rollups take values without a quality defect: flags 0, or only the event bit (provenance).
CLEAN = "(flags = 0 OR flags = 128)"

Run = Callable[[str], list[Series]]  # one InfluxQL statement -> its series


class SetupError(ValueError):
    """The database is not as it may be changed to (a user to limit is an admin)."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    privilege: str  # "WRITE" (the ingest) or "READ" (hydrologists, Grafana)
    password: str = field(default="", repr=False)  # for a user to create


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    duration: str  # InfluxQL literal: INF or 520w
    default: bool


def raw_policy(config: IngestConfig) -> Policy:
    return Policy(config.influx.retention_policy or DEFAULT_RAW_POLICY, config.retention.raw,
                  default=True)


def hourly_policy(config: IngestConfig) -> Policy:
    return Policy(HOURLY_POLICY, config.retention.hourly, default=False)


def rollup_selects(config: IngestConfig, time_range: str = "") -> list[tuple[str, str]]:
    """(kind, SELECT … INTO …) of each rollup; ``time_range`` (``time >= … AND time < …``)
    restricts them for a manual backfill, a continuous query has none."""
    db = quote_ident(config.influx.database)
    source = f"{db}.{quote_ident(raw_policy(config).name)}.{quote_ident(MEASUREMENT)}"
    target = f"{db}.{quote_ident(HOURLY_POLICY)}.{quote_ident(HOURLY_MEASUREMENT)}"
    summed = [quote_string(ch) for ch in config.retention.sum_channels]
    kinds = [("stats", "mean(value) AS mean, min(value) AS min, max(value) AS max, "
                       "count(value) AS count",
              " AND ".join(f"channel != {ch}" for ch in summed))]
    if summed:
        kinds.append(("sum", "sum(value) AS sum, count(value) AS count",
                      "(" + " OR ".join(f"channel = {ch}" for ch in summed) + ")"))
    out = []
    for kind, aggregates, channels in kinds:
        where = " AND ".join(c for c in (channels, CLEAN, time_range) if c)
        out.append((kind, f"SELECT {aggregates} INTO {target} FROM {source} WHERE {where} "
                          f"GROUP BY time(1h), *"))
    return out


def continuous_queries(config: IngestConfig) -> dict[str, str]:
    """name -> CREATE CONTINUOUS QUERY statement."""
    db = quote_ident(config.influx.database)
    out = {}
    for kind, select in rollup_selects(config):
        body = f"RESAMPLE EVERY 1h FOR {config.retention.resample_for} BEGIN {select} END"
        name = f"{CQ_PREFIX}{kind}_{hashlib.sha256(body.encode()).hexdigest()[:8]}"
        out[name] = f"CREATE CONTINUOUS QUERY {quote_ident(name)} ON {db} {body}"
    return out


def setup(config: IngestConfig, run: Run | None = None, dry_run: bool = False) -> list[str]:
    """Bring the database to the config; returns what was (or, dry, would be) done. Raises
    QueryError or OSError."""
    run = run or runner(config)
    db = config.influx.database
    done: list[str] = []

    def do(statement: str) -> None:
        done.append(statement)
        if not dry_run:
            run(statement)

    databases = {row["name"] for s in run("SHOW DATABASES") for row in s.rows}
    if db not in databases:
        do(f"CREATE DATABASE {quote_ident(db)}")
    if db in databases or not dry_run:
        existing = {row["name"]: row
                    for s in run(f"SHOW RETENTION POLICIES ON {quote_ident(db)}")
                    for row in s.rows}
    else:  # what CREATE DATABASE would have made
        existing = {DEFAULT_RAW_POLICY: {"name": DEFAULT_RAW_POLICY, "duration": "0s",
                                         "default": True}}
    for policy in (raw_policy(config), hourly_policy(config)):
        statement = _policy_statement(db, policy, existing.get(policy.name))
        if statement:
            do(statement)
    present = {row["name"] for s in run("SHOW CONTINUOUS QUERIES") if s.name == db
               for row in s.rows if row["name"].startswith(CQ_PREFIX)}
    wanted = continuous_queries(config)
    for name in sorted(present - set(wanted)):
        do(f"DROP CONTINUOUS QUERY {quote_ident(name)} ON {quote_ident(db)}")
    for name in sorted(set(wanted) - present):
        do(wanted[name])
    return done


def users(config: IngestConfig, wanted: list[User], run: Run, dry_run: bool = False
          ) -> list[str]:
    """Create each user missing and give it exactly its privilege on the database; returns
    what was (or, dry, would be) done, passwords hidden. Raises SetupError, QueryError."""
    db = quote_ident(config.influx.database)
    done: list[str] = []
    admins = {row["user"]: bool(row["admin"]) for s in run("SHOW USERS") for row in s.rows}
    for user in wanted:
        name = quote_ident(user.name)
        if admins.get(user.name):
            raise SetupError(f"user {user.name} is an admin: it would not be limited to "
                             f"{user.privilege} (choose another name, or REVOKE ALL PRIVILEGES "
                             f"FROM {name} first)")
        if user.name not in admins:
            if not user.password:
                raise SetupError(f"user {user.name} does not exist: give its password")
            done.append(f"CREATE USER {name} WITH PASSWORD '…'")
            if not dry_run:
                run(f"CREATE USER {name} WITH PASSWORD {quote_string(user.password)}")
            grants: dict[str, str] = {}
        else:
            grants = {row["database"]: str(row["privilege"])
                      for s in run(f"SHOW GRANTS FOR {name}") for row in s.rows}
        current = grants.get(config.influx.database, "NO PRIVILEGES")
        if current == user.privilege:
            continue
        statements = ([f"REVOKE ALL PRIVILEGES ON {db} FROM {name}"]
                      if current != "NO PRIVILEGES" else [])
        statements.append(f"GRANT {user.privilege} ON {db} TO {name}")
        for statement in statements:
            done.append(statement)
            if not dry_run:
                run(statement)
    return done


def downsample(config: IngestConfig, start: int, end: int, run: Run | None = None) -> list[str]:
    """Run the rollups once over [start, end) (Unix s): for backfills older than
    ``retention.resample_for``, which the continuous queries no longer revisit."""
    run = run or runner(config)
    statements = [select for _, select in rollup_selects(
        config, f"time >= {start}s AND time < {end}s")]
    for statement in statements:
        run(statement)
    return statements


def _policy_statement(db: str, policy: Policy, row: dict | None) -> str | None:
    """CREATE or ALTER for ``policy``, or None when the existing one already matches."""
    target = f"{quote_ident(policy.name)} ON {quote_ident(db)} DURATION {policy.duration}"
    default = " DEFAULT" if policy.default else ""
    if row is None:
        return f"CREATE RETENTION POLICY {target} REPLICATION 1{default}"
    same = (go_duration_s(str(row["duration"])) == influxql_duration_s(policy.duration)
            and (bool(row["default"]) or not policy.default))
    return None if same else f"ALTER RETENTION POLICY {target}{default}"


_INFLUXQL_UNITS = {"ns": 1e-9, "u": 1e-6, "µ": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600,
                   "d": 86400, "w": 604800}
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def influxql_duration_s(text: str) -> float:
    """Seconds of an InfluxQL duration literal; INF (keep forever) is 0, as InfluxDB shows it."""
    if text == "INF":
        return 0.0
    return sum(float(n) * _INFLUXQL_UNITS[unit]
               for n, unit in re.findall(r"([0-9]+)(ns|ms|u|µ|s|m|h|d|w)", text))


def go_duration_s(text: str) -> float:
    """Seconds of a Go duration as SHOW RETENTION POLICIES prints it (``8736h0m0s``)."""
    return sum(float(n) * _GO_UNITS[unit]
               for n, unit in re.findall(r"([0-9.]+)(ns|us|µs|ms|s|m|h)", text))


def runner(config: IngestConfig, username: str | None = None, password: str = "") -> Run:
    """Statements run as the config's user, or as ``username`` (an admin)."""
    i = config.influx
    if username is None:
        username, password = i.username, i.password

    def run(statement: str) -> list[Series]:
        return query_series(i.url, i.database, statement, username=username,
                            password=password, timeout_s=max(i.timeout_s, 30))
    return run

