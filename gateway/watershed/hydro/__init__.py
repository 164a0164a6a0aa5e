"""Hydrologists' tools over the InfluxDB the ingest fills (the ``watershed`` subcommands
``query``, ``influx``, ``recompute``, ``rating``).

Modules, one job each: ``influxql`` (InfluxQL over HTTP ``/query``, values as exact decimals),
``query`` (readings by station, basin, channel and time window), ``influx_setup`` (database,
retention policies, hourly rollups), ``recompute`` (discharge again after a rating change),
``timearg`` (times on the command line), ``commands`` (the subcommands).
"""
