"""Nothing lost, end to end, under chaos: readings from simulated stations through the real
gateway, mosquitto, ingest and influxd, while each of them is killed (or stopped) again and
again, the gateway's disk fills up, and misbehaving stations talk on the buses; then every
reading each station made is looked for in InfluxDB and every counter checked against it.

``python -m watershed_sim.chaos [--long]`` (``make chaos`` runs the long version); the pieces:
fleet.py (stations), daemons.py (gateway and ingest processes, the small disk), faults.py
(the seeded schedule), monitor.py (what the broker carries), counters.py (every counter read,
in one place), verdict.py (truth against InfluxDB and the counters), run.py (one run).
"""
