"""`watershed export`: a station's record in the formats hydrologists exchange.

- ``csv-long``: one row per reading (time, station, basin, channel, unit, value, flags as
  stored, their names, corrected flags and the correction's who/when/why, seq, rating_id).
- ``csv-wide``: one row per time, per channel ``<ch>`` (value), ``<ch>_flags`` (names as
  stored) and ``<ch>_corrected_flags`` (names after corrections; blank where none applies).
- ``rdb``: USGS RDB (tab-separated, ``#`` header with the station's metadata and the
  qualification codes, a column-format line), ``<ch>`` and ``<ch>_cd`` per channel, codes
  being the flag names after corrections.
- ``waterml2``: OGC WaterML 2.0 (10-126r4): one ``om:OM_Observation`` per channel with a
  ``wml2:MeasurementTimeseries``, units (UCUM), the monitoring point from the registry
  (position, vertical datum, time zone, gauge datum and sensor elevation as parameters), and
  flags as ``wml2:qualifier`` categories; a missing value is ``xsi:nil``.

Values are written in their exact stored text; times in UTC or a local zone.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime, timezone, tzinfo

from .flags import NAMES, flag_names
from .query import time_text
from .registry import StationInfo
from .series import Point, StationSeries

FORMATS = ("csv-long", "csv-wide", "rdb", "waterml2")
_UNITS = (("_m3s", "m3/s"), ("_mm", "mm"), ("_uscm", "uS/cm"), ("_wm2", "W/m2"),
          ("_kpa", "kPa"), ("_hpa", "hPa"), ("_pct", "%"), ("_deg", "deg"), ("_ms", "m/s"),
          ("_ma", "mA"), ("_m", "m"), ("_c", "Cel"), ("_v", "V"))


def unit_of(channel: str) -> str:
    """The UCUM unit a channel's name carries (contracts/channels.py); "" if it names none."""
    for suffix, unit in _UNITS:
        if channel.endswith(suffix):
            return unit
    return ""


def _value(p: Point) -> str:
    return "" if p.value is None else format(p.value, "f")


def _corrected(p: Point) -> str:
    return "" if p.corrected_flags is None else flag_names(p.corrected_flags)


def csv_long(series: list[StationSeries], zone_of: Callable[[str], tzinfo]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["time", "station", "basin", "channel", "unit", "value", "flags", "flag_names",
                "corrected_flags", "correction", "seq", "rating_id"])
    for st in series:
        for channel, points in sorted(st.channels.items()):
            for p in points:
                w.writerow([time_text(p.time, zone_of(st.station)), st.station, st.basin,
                            channel, unit_of(channel), _value(p), p.flags, flag_names(p.flags),
                            "" if p.corrected_flags is None else p.corrected_flags,
                            p.correction, "" if p.seq is None else p.seq, p.rating_id])
    return out.getvalue()


def csv_wide(st: StationSeries, zone: tzinfo) -> str:
    channels = sorted(st.channels)
    table: dict[int, dict[str, Point]] = {}
    for channel in channels:
        for p in st.channels[channel]:
            table.setdefault(p.time, {})[channel] = p
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["time", *(f"{c}{s}" for c in channels
                          for s in ("", "_flags", "_corrected_flags"))])
    for ts in sorted(table):
        row = [time_text(ts, zone)]
        for c in channels:
            at = table[ts].get(c)
            row += ["", "", ""] if at is None else [_value(at), flag_names(at.flags),
                                                    _corrected(at)]
        w.writerow(row)
    return out.getvalue()


def rdb(st: StationSeries, info: StationInfo | None, zone: tzinfo, agency: str = "WSHD") -> str:
    channels = sorted(st.channels)
    lines = ["# Exported by watershed (watershed export --format rdb)",
             f"# retrieved: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M:%S')} UTC",
             "#", "# Data for the following 1 site(s) are contained in this file",
             f"#    {agency} {st.station} {info.name if info else ''}".rstrip()]
    lines += [f"#    {k}: {v}" for k, v in _metadata(info, st.basin)]
    lines += ["#", f"# Data provided for site {st.station}", "#    column   unit   description"]
    lines += [f"#    {c}   {unit_of(c) or '-'}" for c in channels]
    lines += ["#", "# Data-value qualification codes (the _cd columns; several are joined "
                   "by '|'; after hydrologists' corrections):"]
    lines += [f"#     {name}" for name in NAMES.values()]
    corrections = sorted({(c, p.correction) for c in channels for p in st.channels[c]
                          if p.correction})
    if corrections:
        lines += ["#", "# Corrections (stored flags are in csv-long; these are applied):"]
        lines += [f"#     {c}: {text}" for c, text in corrections]
    lines.append("#")
    table: dict[int, dict[str, Point]] = {}
    for c in channels:
        for p in st.channels[c]:
            table.setdefault(p.time, {})[c] = p
    header = ["agency_cd", "site_no", "datetime", "tz_cd", *(f"{c}{s}" for c in channels
                                                             for s in ("", "_cd"))]
    formats = ["5s", "15s", "20d", "6s", *(f for _ in channels for f in ("14n", "10s"))]
    rows = ["\t".join(header), "\t".join(formats)]
    for ts in sorted(table):
        when = datetime.fromtimestamp(ts, zone)
        cells = [agency, st.station, when.strftime("%Y-%m-%d %H:%M:%S"), _tz_code(when)]
        for c in channels:
            at = table[ts].get(c)
            cells += ["", ""] if at is None else [_value(at), flag_names(at.effective_flags)]
        rows.append("\t".join(cells))
    return "\n".join(lines + rows) + "\n"


def _tz_code(when: datetime) -> str:
    if when.utcoffset() is None or not when.utcoffset():
        return "UTC"
    name = when.tzname() or ""
    return name if name and name[0].isalpha() else when.strftime("%z")


def _metadata(info: StationInfo | None, basin: str) -> list[tuple[str, str]]:
    if info is None:
        return [("basin", basin)]
    items = [("basin", info.basin), ("latitude", info.latitude), ("longitude", info.longitude),
             ("horizontal_datum", info.horizontal_datum), ("gauge_datum_m", info.gauge_datum_m),
             ("vertical_datum", info.vertical_datum),
             ("sensor_elevation_m", info.sensor_elevation_m)]
    return [(k, str(v)) for k, v in items if v not in (None, "")]


# --- WaterML 2.0 ---------------------------------------------------------------------------

NS = {"wml2": "http://www.opengis.net/waterml/2.0", "gml": "http://www.opengis.net/gml/3.2",
      "om": "http://www.opengis.net/om/2.0", "sa": "http://www.opengis.net/sampling/2.0",
      "sams": "http://www.opengis.net/samplingSpatial/2.0",
      "xlink": "http://www.w3.org/1999/xlink", "swe": "http://www.opengis.net/swe/2.0",
      "xsi": "http://www.w3.org/2001/XMLSchema-instance"}
SCHEMA_LOCATION = ("http://www.opengis.net/waterml/2.0 "
                   "http://schemas.opengis.net/waterml/2.0/waterml2.xsd")
FLAG_DEFINITION = "urn:watershed:def:flag"  # a qualifier's swe:Category definition
ORIGINAL_DEFINITION = "urn:watershed:def:stored_flags"  # flags before a correction
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)


def _q(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{NS[prefix]}}}{local}"


def _sub(parent: ET.Element, name: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, _q(name), {_q(k.replace("__", ":")) if "__" in k else k: v
                                               for k, v in attrs.items()})
    if text is not None:
        element.text = text
    return element


def waterml2(st: StationSeries, info: StationInfo | None, zone: tzinfo) -> str:
    root = ET.Element(_q("wml2:Collection"), {_q("gml:id"): f"C.{st.station}",
                                              _q("xsi:schemaLocation"): SCHEMA_LOCATION})
    meta = _sub(_sub(root, "wml2:metadata"), "wml2:DocumentMetadata", gml__id="DM.1")
    _sub(meta, "wml2:generationDate", time_text(int(datetime.now(timezone.utc).timestamp()),
                                                 zone))
    _sub(meta, "wml2:generationSystem", "watershed export")
    for n, channel in enumerate(sorted(st.channels), 1):
        points = st.channels[channel]
        if not points:
            continue
        obs = _sub(_sub(root, "wml2:observationMember"), "om:OM_Observation",
                   gml__id=f"obs.{n}")
        period = _sub(_sub(obs, "om:phenomenonTime"), "gml:TimePeriod", gml__id=f"tp.{n}")
        _sub(period, "gml:beginPosition", time_text(points[0].time, zone))
        _sub(period, "gml:endPosition", time_text(points[-1].time, zone))
        instant = _sub(_sub(obs, "om:resultTime"), "gml:TimeInstant", gml__id=f"rt.{n}")
        _sub(instant, "gml:timePosition", time_text(points[-1].time, zone))
        _sub(obs, "om:procedure", xlink__href=f"urn:watershed:station:{st.station}:{channel}")
        for name, value in _metadata(info, st.basin):
            if name in ("gauge_datum_m", "sensor_elevation_m"):
                nv = _sub(_sub(obs, "om:parameter"), "om:NamedValue")
                _sub(nv, "om:name", xlink__href=f"urn:watershed:def:{name}", xlink__title=name)
                _sub(nv, "om:value", value)
        _sub(obs, "om:observedProperty", xlink__href=f"urn:watershed:channel:{channel}",
             xlink__title=channel)
        _monitoring_point(_sub(obs, "om:featureOfInterest"), st, info, zone, n)
        ts = _sub(_sub(obs, "om:result"), "wml2:MeasurementTimeseries", gml__id=f"ts.{n}")
        default = _sub(_sub(ts, "wml2:defaultPointMetadata"),
                       "wml2:DefaultTVPMeasurementMetadata")
        _sub(default, "wml2:uom", code=unit_of(channel) or "1")
        _sub(default, "wml2:interpolationType", xlink__href=(
            "http://www.opengis.net/def/waterml/2.0/interpolationType/" +
            ("PrecTotal" if channel == "rain_mm" else "Continuous")))
        for p in points:
            tvp = _sub(_sub(ts, "wml2:point"), "wml2:MeasurementTVP")
            _sub(tvp, "wml2:time", time_text(p.time, zone))
            if p.value is None:
                _sub(tvp, "wml2:value", xsi__nil="true")
            else:
                _sub(tvp, "wml2:value", format(p.value, "f"))
            if p.effective_flags or p.corrected_flags is not None:
                md = _sub(_sub(tvp, "wml2:metadata"), "wml2:TVPMeasurementMetadata")
                for bit, name in NAMES.items():
                    if (p.effective_flags or 0) & bit:
                        cat = _sub(_sub(md, "wml2:qualifier"), "swe:Category",
                                   definition=FLAG_DEFINITION)
                        _sub(cat, "swe:value", name)
                if p.corrected_flags is not None:
                    cat = _sub(_sub(md, "wml2:qualifier"), "swe:Category",
                               definition=ORIGINAL_DEFINITION)
                    _sub(cat, "swe:description", p.correction)
                    _sub(cat, "swe:value", flag_names(p.flags) or "none")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _monitoring_point(parent: ET.Element, st: StationSeries, info: StationInfo | None,
                      zone: tzinfo, n: int) -> None:
    mp = _sub(parent, "wml2:MonitoringPoint", gml__id=f"mp.{n}")
    _sub(mp, "gml:identifier", st.station, codeSpace="urn:watershed:station")
    if info and info.name:
        _sub(mp, "gml:name", info.name)
    _sub(mp, "sa:sampledFeature", xlink__href=f"urn:watershed:basin:{st.basin}",
         xlink__title=st.basin)
    if info and info.latitude is not None and info.longitude is not None:
        point = _sub(_sub(mp, "sams:shape"), "gml:Point", gml__id=f"p.{n}",
                     srsName="urn:ogc:def:crs:EPSG::4326")  # WGS84, latitude first
        _sub(point, "gml:pos", f"{info.latitude} {info.longitude}")
    else:  # the schema requires a shape: its position is not known (not in the registry)
        _sub(mp, "sams:shape", nilReason="missing")
    if info and info.vertical_datum:
        _sub(mp, "wml2:verticalDatum", xlink__href=f"urn:watershed:datum:{info.vertical_datum}",
             xlink__title=info.vertical_datum)
    offset = datetime.now(zone).strftime("%z")
    tz = _sub(_sub(mp, "wml2:timeZone"), "wml2:TimeZone")
    _sub(tz, "wml2:zoneOffset", f"{offset[:3]}:{offset[3:]}")
    _sub(tz, "wml2:zoneAbbreviation", str(zone) if zone is not timezone.utc else "UTC")
