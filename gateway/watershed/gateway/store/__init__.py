"""The gateway's durable store: every reading heard, until an ingest confirms it is in InfluxDB.

A package around one database object (database.py) with a module per concern; ``Store``
(front.py) is the one object its callers use. front.py says which module does what.
"""

from .database import Database, StoreError, StoreFull
from .delivery import Confirmed, StoredReading
from .facts import FACTS_INTERVAL_S, StationInfo
from .front import Store
from .identity import QuarantineEntry
from .ledger import GONE_FROM_STATION, QUARANTINED, REJECTED_BY_INGEST, SHED_REASONS
from .quota import (DEFAULT_PROTECTED_EVENTS, MIN_QUOTA_BYTES, SHED_SLACK, STORE_FILE_SUFFIXES,
                    QuotaPlan)
from .readings import AckRanges, Added
from .schema import (DELIVERED_SQL, NOT_DELIVERED_SQL, ROW_OVERHEAD_BYTES, SCHEMA_VERSION,
                     row_cost)

__all__ = [
    "DEFAULT_PROTECTED_EVENTS", "DELIVERED_SQL", "FACTS_INTERVAL_S", "GONE_FROM_STATION",
    "MIN_QUOTA_BYTES", "NOT_DELIVERED_SQL", "QUARANTINED", "REJECTED_BY_INGEST",
    "ROW_OVERHEAD_BYTES", "SCHEMA_VERSION", "SHED_REASONS", "SHED_SLACK", "STORE_FILE_SUFFIXES",
    "AckRanges", "Added", "Confirmed", "Database", "QuarantineEntry", "QuotaPlan",
    "StationInfo", "Store", "StoreError", "StoreFull", "StoredReading", "row_cost",
]
