"""watershed: gateway, ingest and shared contracts for the remote watershed monitoring network."""

__version__ = "0.1.0"
