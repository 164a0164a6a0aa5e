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
from watershed.ingest.writer import (EncodingWriter, RejectedWriteError, RetryableWriteError,
                                     V1Writer, V2Writer, Writer, classify_http_error, make_writer,
                                     parse_retry_after)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "mqtt_v1.json").read_text())
LINES: list[str] = VECTORS["messages"][0]["lines"]


class FakeInflux(ThreadingHTTPServer):
    """Answers each POST with the next scripted (status, headers, body), 204 when the script is
    empty, and records what it received (body un-gzipped). HTTP/1.1 with keep-alive, as influxd;
    counts the connections it accepted."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        # status None: drop the connection without answering
        self.script: deque[tuple[int | None, dict[str, str], bytes, float, bool]] = deque()
        self.requests: list[tuple[str, dict[str, str], str]] = []
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, status: int, body: object = b"", headers: dict[str, str] | None = None,
               delay_s: float = 0.0, close: bool = False) -> None:
        """``close``: then close the connection without saying so (no ``Connection: close``),
        as a server restarting or timing out an idle connection does."""
        raw = json.dumps(body).encode() if isinstance(body, dict) else bytes(body)  # type: ignore
        self.script.append((status, headers or {}, raw, delay_s, close))

    def drop(self) -> None:
        """Read the next request, then close the connection without an answer."""
        self.script.append((None, {}, b"", 0.0, True))


class _Handler(BaseHTTPRequestHandler):
    server: FakeInflux
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.requests.append((self.path, dict(self.headers), body.decode()))
        status, headers, raw, delay_s, close = (self.server.script.popleft()
                                                if self.server.script
                                                else (204, {}, b"", 0.0, False))
        time.sleep(delay_s)
        self.close_connection = close
        if status is None:
            return
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (timeouts)
            self.close_connection = True

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


@pytest.mark.parametrize("make", WRITERS)
def test_a_body_made_beforehand_is_sent_as_it_is(make: MakeWriter,
                                                 fake_influx: FakeInflux) -> None:
    # The ingest's worker encodes each batch so the write thread only sends; a body that is not
    # encode(lines) (never so in the ingest) shows that it is not made again from the lines.
    writer = make(fake_influx.url)
    assert isinstance(writer, EncodingWriter)
    writer.write(LINES, writer.encode(LINES[:2]))
    [(_, headers, body)] = fake_influx.requests
    assert headers["Content-Encoding"] == "gzip"
    assert body == "\n".join(LINES[:2])


# -- the v1 writer's connection ------------------------------------------------------------------

def test_v1_writes_share_one_connection(fake_influx: FakeInflux) -> None:
    writer = v1(fake_influx.url)
    fake_influx.answer(500, {"error": "busy"})  # an error answer does not spoil the connection
    with pytest.raises(RetryableWriteError):
        writer.write(LINES)
    for _ in range(3):
        writer.write(LINES)
    writer.close()
    assert len(fake_influx.requests) == 4
    assert fake_influx.connections == 1


def test_v1_sends_once_more_on_a_new_connection_if_the_kept_one_was_closed(
        fake_influx: FakeInflux) -> None:
    writer = v1(fake_influx.url)
    fake_influx.answer(204, close=True)
    writer.write(LINES[:1])
    writer.write(LINES[1:])  # fails on the closed connection, goes out again on a new one
    assert [body for _, _, body in fake_influx.requests] == [LINES[0], "\n".join(LINES[1:])]
    assert fake_influx.connections == 2
    writer.close()


def test_v1_sends_once_more_only_once(fake_influx: FakeInflux) -> None:
    writer = v1(fake_influx.url)
    fake_influx.answer(204, close=True)
    fake_influx.drop()
    fake_influx.drop()
    writer.write(LINES)
    with pytest.raises(RetryableWriteError) as e:
        writer.write(LINES)  # the kept connection is closed; the new one drops it too
    assert e.value.status is None
    assert len(fake_influx.requests) == 2 and len(fake_influx.script) == 1
    writer.close()


def test_v1_a_new_connection_dropped_without_answer_is_retryable(
        fake_influx: FakeInflux) -> None:
    fake_influx.drop()
    writer = v1(fake_influx.url)
    with pytest.raises(RetryableWriteError) as e:
        writer.write(LINES)  # not sent again: only a kept-alive connection may have gone stale
    assert e.value.status is None
    assert len(fake_influx.requests) == 1
    writer.write(LINES)  # and the next write opens a new connection
    assert len(fake_influx.requests) == 2 and fake_influx.connections == 2
    writer.close()


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
