"""`watershed export --format waterml2` is valid against the OGC WaterML 2.0 schema (read offline
from tests/vectors/ogc-schemas): values, a missing value (xsi:nil), flags and a correction as
qualifiers, the station's metadata; and the check is real: a document that breaks the schema
is refused."""

from __future__ import annotations

from datetime import timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from tests.fixtures.waterml_schema import schema_errors
from watershed.hydro.export import waterml2
from watershed.hydro.registry import StationInfo
from watershed.hydro.series import Point, StationSeries

T0 = 1763596800
INFO = StationInfo("SAN-01", "santiago", "Rio Zamora en San Francisco", -3.9702, -79.0725,
                   "WGS84", 1812.45, "EGM96", 1812.2, {"stage_m": 900, "rain_mm": 900})


def series() -> StationSeries:
    return StationSeries("SAN-01", "santiago", {
        "stage_m": [Point(T0, Decimal("1.50"), 0, 1), Point(T0 + 900, None, 0x01, 3),
                    Point(T0 + 1800, Decimal("3.912"), 0x10, 5, corrected_flags=0,
                          correction="-spike by ana at 2025-11-21: real flood peak")],
        "rain_mm": [Point(T0, Decimal("0.2"), 0x80, 2)]})


def test_the_export_is_valid_waterml2_in_utc_and_local_time() -> None:
    for zone in (timezone.utc, ZoneInfo("America/Guayaquil")):
        xml = waterml2(series(), INFO, zone)
        assert schema_errors(xml) == [], xml
    assert schema_errors(waterml2(series(), None, timezone.utc)) == [], "no registry entry"


def test_a_document_that_breaks_the_schema_is_refused() -> None:
    xml = waterml2(series(), INFO, timezone.utc)
    assert schema_errors(xml.replace("<wml2:value>1.50</wml2:value>",
                                     "<wml2:value>1,50</wml2:value>"))
    assert schema_errors(xml.replace("wml2:MonitoringPoint", "wml2:MonitoringSpot"))
