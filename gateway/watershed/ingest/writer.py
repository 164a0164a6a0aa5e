"""Write line protocol to InfluxDB: a v1 writer (``/write``) and a v2 writer (``/api/v2/write``).

Both have one method, ``write(lines)``, which returns only when InfluxDB has confirmed every line,
and otherwise raises one of two errors, so the caller decides what to acknowledge:

- ``RetryableWriteError``: the same batch may succeed later (no connection, timeout, 429, 5xx, and
  401/403/404, see ``_NOT_THE_DATAS_FAULT``). Carries the server's Retry-After if it sent one.
- ``RejectedWriteError``: InfluxDB refused the data itself (400, 413, 422 ...); retrying the same
  batch cannot help. Carries the server's message (for 1.x a partial write says which line).

Neither writer retries by itself and neither buffers: influxdb-client's batching mode would hold
points in memory and report failures to a callback, decoupled from the MQTT acks (anchors.md).
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import http.client
import json
import time
import urllib.error
import urllib.request
from typing import Protocol
from urllib.parse import urlencode

from ..contracts.influx import PRECISION
from .config import InfluxConfig

# Client errors that say nothing about the lines: bad credentials, missing database or bucket.
# Every batch would fail the same way until an operator fixes the setup, so they are retried
# (messages stay unacked) instead of dead-lettering the whole stream as Telegraf drops it.
_NOT_THE_DATAS_FAULT = frozenset({401, 403, 404})
_TOO_MANY_REQUESTS = 429
# Line protocol compresses some 15:1 at level 1 and 17:1 at 5, at half the CPU; the write thread
# compresses while the worker converts the next batch (zlib lets go of the GIL).
GZIP_LEVEL = 1


class WriteError(Exception):
    """A batch was not confirmed written."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status  # HTTP status, None when there was no response


class RetryableWriteError(WriteError):
    """Try the same batch again later, after ``retry_after`` seconds if the server said so."""

    def __init__(self, message: str, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class RejectedWriteError(WriteError):
    """InfluxDB refused the batch's data; retrying it unchanged cannot succeed."""


class Writer(Protocol):
    def write(self, lines: list[str]) -> None: ...

    def close(self) -> None: ...


def classify_http_error(status: int | None, message: str,
                        retry_after: str | None = None) -> WriteError:
    """The error for a non-2xx answer (or none at all, ``status`` None). Shared by both writers."""
    text = f"HTTP {status}: {message}" if status is not None else message
    if status is not None and 400 <= status < 500 and status != _TOO_MANY_REQUESTS \
            and status not in _NOT_THE_DATAS_FAULT:
        return RejectedWriteError(text, status)
    # 429, 5xx, an unexpected 1xx/3xx (a proxy or a wrong URL: not the data's fault either)
    return RetryableWriteError(text, status, parse_retry_after(retry_after))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class V1Writer:
    """POST to InfluxDB 1.x ``/write`` (also served by 2.x/3.x compatibility APIs)."""

    def __init__(self, url: str, database: str, retention_policy: str = "", username: str = "",
                 password: str = "", timeout_s: float = 10,
                 gzip_level: int = GZIP_LEVEL) -> None:
        params = {"db": database, "precision": PRECISION}
        if retention_policy:
            params["rp"] = retention_policy
        self._url = f"{url.rstrip('/')}/write?{urlencode(params)}"
        self._headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"}
        if username:
            # A header rather than u=/p= parameters keeps the password out of URLs and logs.
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._timeout_s = timeout_s
        self._gzip_level = gzip_level
        # No proxies from the environment: the database is reached directly, as influxdb-client
        # (V2Writer) does too.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def write(self, lines: list[str]) -> None:
        if not lines:
            return
        body = gzip.compress("\n".join(lines).encode(), compresslevel=self._gzip_level)
        request = urllib.request.Request(self._url, data=body, headers=self._headers,
                                         method="POST")
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as e:
            try:
                error = classify_http_error(e.code, _v1_message(e), e.headers.get("Retry-After"))
            finally:
                e.close()
            raise error from None
        except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, resets
            raise RetryableWriteError(f"{self._url.split('?')[0]}: {_reason(e)}") from e

    def close(self) -> None:
        pass


def _v1_message(e: urllib.error.HTTPError) -> str:
    """1.x answers ``{"error": "..."}``; 2.x compatibility answers ``{"message": "..."}``."""
    try:
        raw = e.read().decode(errors="replace")
    except (OSError, http.client.HTTPException):
        raw = ""
    try:
        body = json.loads(raw)
        if isinstance(body, dict):
            return str(body.get("error") or body.get("message") or raw)
    except ValueError:
        pass
    return raw.strip() or e.headers.get("X-Influxdb-Error") or str(e.reason)


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None)  # URLError wraps the socket error
    return str(reason if reason is not None else e) or type(e).__name__


class V2Writer:
    """influxdb-client's WriteApi in SYNCHRONOUS mode against ``/api/v2/write``."""

    def __init__(self, url: str, org: str, bucket: str, token: str,
                 timeout_s: float = 10) -> None:
        # Imported here so the v1 path does not pay for loading the client's dependencies.
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self._org = org
        self._bucket = bucket
        self._client = InfluxDBClient(url=url, token=token, org=org,
                                      timeout=int(timeout_s * 1000), enable_gzip=True)
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: list[str]) -> None:
        if not lines:
            return
        import urllib3
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._api.write(bucket=self._bucket, org=self._org, record=lines,
                            write_precision=WritePrecision.S)  # type: ignore[arg-type]
        except ApiException as e:
            raise classify_http_error(e.status, str(e.message), e.retry_after) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:  # connection refused, timeouts
            raise RetryableWriteError(f"{self._client.url}: {e}") from e

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]


def make_writer(config: InfluxConfig) -> Writer:
    if config.api == "v2":
        return V2Writer(config.url, config.org, config.bucket, config.token, config.timeout_s)
    return V1Writer(config.url, config.database, config.retention_policy, config.username,
                    config.password, config.timeout_s)
