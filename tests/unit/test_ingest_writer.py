"""Both InfluxDB writers against a scripted local HTTP server: what reaches the wire, and how each
answer (or no answer) is classified. V1Writer is also tested against a real influxd
(tests/integration/test_ingest_influx_v1.py); no v2 server is available here."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from watershed.ingest.config import IngestConfig
from watershed.ingest.writer import (RejectedWriteError, RetryableWriteError, V1Writer, V2Writer,
                                     Writer, classify_http_error, make_writer, parse_retry_after)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "mqtt_v1.json").read_text())
LINES: list[str] = VECTORS["messages"][0]["lines"]


class FakeInflux(ThreadingHTTPServer):
    """Answers each POST with the next scripted (status, headers, body), 204 when the script is
    empty, and records what it received (body un-gzipped)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: deque[tuple[int, dict[str, str], bytes, float]] = deque()
        self.requests: list[tuple[str, dict[str, str], str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, status: int, body: object = b"", headers: dict[str, str] | None = None,
               delay_s: float = 0.0) -> None:
        raw = json.dumps(body).encode() if isinstance(body, dict) else bytes(body)  # type: ignore
        self.script.append((status, headers or {}, raw, delay_s))


class _Handler(BaseHTTPRequestHandler):
    server: FakeInflux

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.requests.append((self.path, dict(self.headers), body.decode()))
        status, headers, raw, delay_s = (self.server.script.popleft() if self.server.script
                                         else (204, {}, b"", 0.0))
        time.sleep(delay_s)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_influx() -> Iterator[FakeInflux]:
    server = FakeInflux()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def v1(url: str, timeout_s: float = 5) -> Writer:
    return V1Writer(url, "watershed", timeout_s=timeout_s)


def v2(url: str, timeout_s: float = 5) -> Writer:
    return V2Writer(url, org="hydro", bucket="watershed", token="t0k", timeout_s=timeout_s)


WRITERS = [pytest.param(v1, id="v1"), pytest.param(v2, id="v2")]
MakeWriter = Callable[..., Writer]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# -- what reaches the wire -----------------------------------------------------------------------

def test_v1_request(fake_influx: FakeInflux) -> None:
    V1Writer(fake_influx.url + "/", "watershed", retention_policy="raw", username="writer",
             password="pw").write(LINES)
    [(path, headers, body)] = fake_influx.requests
    url = urlsplit(path)
    assert url.path == "/write"
    assert parse_qs(url.query) == {"db": ["watershed"], "rp": ["raw"], "precision": ["s"]}
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Authorization"] == "Basic d3JpdGVyOnB3"  # writer:pw, not in the URL
    assert body == "\n".join(LINES)


def test_v2_request(fake_influx: FakeInflux) -> None:
    v2(fake_influx.url).write(LINES)
    [(path, headers, body)] = fake_influx.requests
    url = urlsplit(path)
    assert url.path == "/api/v2/write"
    assert parse_qs(url.query) == {"org": ["hydro"], "bucket": ["watershed"], "precision": ["s"]}
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Authorization"] == "Token t0k"
    assert body == "\n".join(LINES)  # the exact decimal text survives the client


@pytest.mark.parametrize("make", WRITERS)
def test_nothing_to_write_sends_nothing(make: MakeWriter, fake_influx: FakeInflux) -> None:
    make(fake_influx.url).write([])
    assert fake_influx.requests == []


# -- classification ------------------------------------------------------------------------------

@pytest.mark.parametrize("make", WRITERS)
@pytest.mark.parametrize("status", [400, 413, 422])
def test_data_errors_are_rejected_with_the_servers_message(
        make: MakeWriter, status: int, fake_influx: FakeInflux) -> None:
    # 1.x says {"error": ...}, 2.x {"code": ..., "message": ...}; each writer must find the text.
    fake_influx.answer(status, {"error": "partial write: field type conflict",
                                "message": "partial write: field type conflict"})
    with pytest.raises(RejectedWriteError) as e:
        make(fake_influx.url).write(LINES)
    assert e.value.status == status
    assert "partial write: field type conflict" in e.value.message


@pytest.mark.parametrize("make", WRITERS)
@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_overload_and_server_errors_are_retryable(
        make: MakeWriter, status: int, fake_influx: FakeInflux) -> None:
    fake_influx.answer(status, {"error": "busy", "message": "busy"}, {"Retry-After": "7"})
    with pytest.raises(RetryableWriteError) as e:
        make(fake_influx.url).write(LINES)
    assert e.value.status == status
    assert e.value.retry_after == 7


@pytest.mark.parametrize("make", WRITERS)
@pytest.mark.parametrize("status", [401, 403, 404])
def test_setup_errors_are_retryable_not_the_datas_fault(
        make: MakeWriter, status: int, fake_influx: FakeInflux) -> None:
    # Bad credentials or a missing database would fail every batch alike: hold, don't discard.
    fake_influx.answer(status, {"error": "database not found", "message": "database not found"})
    with pytest.raises(RetryableWriteError) as e:
        make(fake_influx.url).write(LINES)
    assert e.value.status == status and e.value.retry_after is None
    assert "database not found" in e.value.message


@pytest.mark.parametrize("make", WRITERS)
def test_no_server_is_retryable(make: MakeWriter) -> None:
    with pytest.raises(RetryableWriteError) as e:
        make(closed_port_url()).write(LINES)
    assert e.value.status is None


@pytest.mark.parametrize("make", WRITERS)
def test_timeout_is_retryable(make: MakeWriter, fake_influx: FakeInflux) -> None:
    fake_influx.answer(204, delay_s=1.0)
    started = time.monotonic()
    with pytest.raises(RetryableWriteError):
        make(fake_influx.url, timeout_s=0.2).write(LINES)
    assert time.monotonic() - started < 0.9


def test_v1_plain_text_error_body(fake_influx: FakeInflux) -> None:
    fake_influx.answer(400, b"unable to parse 'x': missing fields\n")
    with pytest.raises(RejectedWriteError, match="unable to parse 'x': missing fields"):
        v1(fake_influx.url).write(["x"])


def test_classify_unexpected_status_is_retryable() -> None:
    assert isinstance(classify_http_error(307, "moved"), RetryableWriteError)
    assert isinstance(classify_http_error(None, "reset"), RetryableWriteError)


def test_retry_after_forms() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("nonsense") is None
    assert parse_retry_after(" 12 ") == 12
    in_30s = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert in_30s is not None and 28 <= in_30s <= 30
    assert parse_retry_after(formatdate(time.time() - 30, usegmt=True)) == 0


def test_make_writer_picks_the_api() -> None:
    assert isinstance(make_writer(IngestConfig.from_dict({}).influx), V1Writer)
    config = IngestConfig.from_dict(
        {"influx": {"api": "v2", "org": "o", "bucket": "b", "token": "t"}})
    writer = make_writer(config.influx)
    assert isinstance(writer, V2Writer)
    writer.close()
