"""Prometheus metrics of a long-running program (gateway, ingest) on a loopback HTTP port.

    watershed_gateway_readings_unsent{gateway="gw-zamora"} 12

Each scrape calls the program's ``collect()`` for its current numbers (nothing is kept between
scrapes, nothing costs anything until someone scrapes), plus the process's own (memory, CPU,
open files: prometheus-client's ProcessCollector). Only 127.0.0.1: the port is for a Prometheus
or node-exporter textfile collector on the same machine, or an SSH tunnel, never the network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.core import GaugeMetricFamily

# prometheus-client (with http.server) is imported only by serve(): about 10 MB of a gateway's
# RSS that a gateway without metrics_port does not pay.

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

Sample = tuple[Mapping[str, str], float]  # (labels, value)


class Family:
    """One metric: a name, what it means, its label names and samples (a gauge: a scrape sees
    the value as it is now; totals since start are gauges too, named ``…_total``)."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.samples: list[Sample] = []

    def add(self, value: Any, **labels: str) -> None:
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int | float):  # None (unknown) is left out: missing, not 0
            self.samples.append((labels, float(value)))


class _Collector:
    """A prometheus-client collector (it needs only ``collect``)."""

    def __init__(self, prefix: str, collect: Callable[[], Iterable[Family]]) -> None:
        self._prefix = prefix
        self._collect = collect

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from prometheus_client.core import GaugeMetricFamily
        try:
            families = list(self._collect())
        except Exception:
            log.exception("metrics: could not collect")
            return
        for family in families:
            gauge = GaugeMetricFamily(f"{self._prefix}_{family.name}", family.documentation,
                                      labels=list(family.labels))
            for labels, value in family.samples:
                gauge.add_metric([labels[name] for name in family.labels], value)
            yield gauge


def serve(port: int, prefix: str, collect: Callable[[], Iterable[Family]]) -> Any:
    """Serve ``collect()``'s families as ``<prefix>_<name>`` on 127.0.0.1:``port`` from a
    daemon thread; returns the server (``shutdown()`` stops it). Raises OSError if the port is
    taken."""
    from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
    registry = CollectorRegistry()
    registry.register(ProcessCollector(registry=None))
    registry.register(_Collector(prefix, collect))
    server, _thread = start_http_server(port, addr=LOOPBACK, registry=registry)
    log.info("metrics on http://%s:%d/metrics", LOOPBACK, port)
    return server
