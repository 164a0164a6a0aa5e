"""Write line protocol to InfluxDB: a v1 writer (``/write``) and a v2 writer (``/api/v2/write``).

Both have one method, ``write(lines)``, which returns only when InfluxDB has confirmed every line,
and otherwise raises one of two errors, so the caller decides what to acknowledge:

- ``RetryableWriteError``: the same batch may succeed later (no connection, timeout, 429, 5xx, and
  401/403/404, see ``_NOT_THE_DATAS_FAULT``). Carries the server's Retry-After if it sent one.
- ``RejectedWriteError``: InfluxDB refused the data itself (400, 413, 422 ...); retrying the same
  batch cannot help. Carries the server's message (for 1.x a partial write says which line).

Neither writer retries by itself and neither buffers: influxdb-client's batching mode would hold
points in memory and report failures to a callback, decoupled from the MQTT acks, so a message
could be acknowledged before its points were written.
(The one exception: V1Writer sends a request once more, at once, when a kept-alive connection
turns out to have been closed by the server meanwhile; see ``V1Writer.write``.)

Both are also ``EncodingWriter``s: ``encode(lines)`` makes the request body, so that a caller with
a thread to spare can make it there and hand it to ``write(lines, body)``; the ingest's worker
does, because compressing in the write thread would hold up every write (see GZIP_LEVEL).
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import http.client
import json
import time
from typing import Protocol, runtime_checkable
from urllib.parse import urlencode, urlsplit

from ..contracts.influx import PRECISION
from .config import InfluxConfig

# Client errors that say nothing about the lines: bad credentials, missing database or bucket.
# Every batch would fail the same way until an operator fixes the setup, so they are retried
# (messages stay unacked) instead of dead-lettering the whole stream as Telegraf drops it.
_NOT_THE_DATAS_FAULT = frozenset({401, 403, 404})
_TOO_MANY_REQUESTS = 429
# Line protocol compresses some 15:1 at level 1 and 17:1 at 5, at half the CPU. Compressing in the
# ingest's write thread cost it ~10 ms a batch while the worker was converting: zlib lets go of
# the GIL for each block of output and then waits out the other thread's switch interval (5 ms)
# to get it back. So the worker compresses, once per batch (encode), before handing it over.
GZIP_LEVEL = 1
# What a kept-alive connection looks like once the server has closed it (idle timeout, restart):
# the request fails before any answer. Refused connections and timeouts are not among them.
_STALE_CONNECTION = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


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


@runtime_checkable
class EncodingWriter(Writer, Protocol):
    """A writer whose request body another thread can make beforehand."""

    def encode(self, lines: list[str]) -> bytes:
        """The request body for ``lines``; any thread may call it."""
        ...

    def write(self, lines: list[str], body: bytes | None = None) -> None:
        """Write ``lines``; ``body``, if given, is ``encode(lines)``."""
        ...


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
    """POST to InfluxDB 1.x ``/write`` (also served by 2.x/3.x compatibility APIs), all writes over
    one kept-alive connection, opened when needed: a new TCP connection per write cost the write
    thread a connect and a close, each a wait for the GIL (see GZIP_LEVEL). One thread at a time.
    """

    def __init__(self, url: str, database: str, retention_policy: str = "", username: str = "",
                 password: str = "", timeout_s: float = 10,
                 gzip_level: int = GZIP_LEVEL) -> None:
        params = {"db": database, "precision": PRECISION}
        if retention_policy:
            params["rp"] = retention_policy
        parts = urlsplit(url)
        path = f"{parts.path.rstrip('/')}/write"
        self._where = f"{parts.scheme}://{parts.netloc}{path}"  # for error messages
        self._target = f"{path}?{urlencode(params)}"
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"}
        if username:
            # A header rather than u=/p= parameters keeps the password out of URLs and logs.
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._timeout_s = timeout_s
        self._gzip_level = gzip_level
        self._connection: http.client.HTTPConnection | None = None
        self._reused = False  # the last request went out on a connection opened before it

    def encode(self, lines: list[str]) -> bytes:
        return gzip.compress("\n".join(lines).encode(), compresslevel=self._gzip_level)

    def write(self, lines: list[str], body: bytes | None = None) -> None:
        if not lines:
            return
        if body is None:
            body = self.encode(lines)
        try:
            try:
                response, answer = self._post(body)
            except _STALE_CONNECTION:
                # Dropped before answering: on a connection that had served earlier writes, most
                # likely closed by the server meanwhile, so send once more on a new one (writing
                # the same points twice is harmless). A new connection that fails is an error.
                if not self._reused:
                    raise
                response, answer = self._post(body)
        except (OSError, http.client.HTTPException) as e:  # refused, timeouts, resets
            raise RetryableWriteError(f"{self._where}: {str(e) or type(e).__name__}") from e
        if not 200 <= response.status < 300:
            raise classify_http_error(response.status, _v1_message(response, answer),
                                      response.headers.get("Retry-After"))

    def _post(self, body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
        """One request and its whole answer; after a failure the connection is closed."""
        if self._connection is None:
            # No proxies from the environment: the database is reached directly, as
            # influxdb-client (V2Writer) does too. HTTPS verifies the certificate by default.
            connection_class = (http.client.HTTPSConnection if self._https
                                else http.client.HTTPConnection)
            self._connection = connection_class(self._host, self._port, timeout=self._timeout_s)
        connection = self._connection
        self._reused = connection.sock is not None  # http.client connects on request when not
        try:
            connection.request("POST", self._target, body, self._headers)
            response = connection.getresponse()
            answer = response.read()  # all of it, or the connection cannot carry the next one
        except BaseException:
            self.close()
            raise
        return response, answer

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _v1_message(response: http.client.HTTPResponse, raw: bytes) -> str:
    """1.x answers ``{"error": "..."}``; 2.x compatibility answers ``{"message": "..."}``."""
    text = raw.decode(errors="replace")
    try:
        body = json.loads(text)
        if isinstance(body, dict):
            return str(body.get("error") or body.get("message") or text)
    except ValueError:
        pass
    return text.strip() or response.headers.get("X-Influxdb-Error") or response.reason


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

    def encode(self, lines: list[str]) -> bytes:
        # The client compresses (enable_gzip) in write(); joining here spares it a bytes per line.
        return "\n".join(lines).encode()

    def write(self, lines: list[str], body: bytes | None = None) -> None:
        if not lines:
            return
        import urllib3
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._api.write(bucket=self._bucket, org=self._org,
                            record=body if body is not None else lines,
                            write_precision=WritePrecision.S)  # type: ignore[arg-type]
        except ApiException as e:
            raise classify_http_error(e.status, str(e.message), e.retry_after) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:  # connection refused, timeouts
            raise RetryableWriteError(f"{self._client.url}: {e}") from e

    def close(self) -> None:
        self._api.close()
        self._client.close()


def make_writer(config: InfluxConfig) -> Writer:
    if config.api == "v2":
        return V2Writer(config.url, config.org, config.bucket, config.token, config.timeout_s)
    return V1Writer(config.url, config.database, config.retention_policy, config.username,
                    config.password, config.timeout_s)
