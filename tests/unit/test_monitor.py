"""Monitoring against a real local HTTP server that records what it received: Healthchecks
pings, apprise's JSON webhook, a server that is down or hangs; the Prometheus textfile."""

from __future__ import annotations

import http.server
import json
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from recoverctl.adapters import monitor
from recoverctl.adapters.monitor import Metric


@dataclass
class Received:
    method: str
    path: str
    body: bytes


@dataclass
class Recorder:
    """http.server on 127.0.0.1 in a thread; `delay` seconds before each answer."""

    port: int = 0
    status: int = 200
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Recorder:
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.received.append(Received(self.command, self.path, body))
                time.sleep(recorder.delay)
                try:
                    self.send_response(recorder.status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"OK")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: what the bound is for

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, *args: object) -> None:
                return None

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def paths(self) -> list[str]:
        return [r.path for r in self.received]


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder().start()
    yield recorder
    recorder.stop()


def test_healthchecks_endpoints_and_body(server: Recorder) -> None:
    base = server.url + "/ping/abc-123"
    assert monitor.ping(base, "start", rid="r1") is None
    assert monitor.ping(base, "success", "all good", rid="r1") is None
    assert monitor.ping(base + "/", "fail", "line 1\nline 2") is None
    assert server.paths() == ["/ping/abc-123/start?rid=r1", "/ping/abc-123?rid=r1", "/ping/abc-123/fail"]
    assert [r.method for r in server.received] == ["POST"] * 3
    assert server.received[1].body == b"all good"
    assert server.received[2].body == b"line 1\nline 2"


def test_a_long_body_keeps_its_end(server: Recorder) -> None:
    monitor.ping(server.url, "fail", "x" * 50_000 + "THE END")
    assert server.received[0].body.endswith(b"THE END")
    assert len(server.received[0].body) == monitor.BODY_LIMIT


def test_an_error_status_is_a_problem_never_an_exception(server: Recorder) -> None:
    server.status = 404
    problem = monitor.ping(server.url + "/secret-uuid", "success")
    assert problem == "healthchecks success ping: HTTP 404"
    assert "secret-uuid" not in problem


def test_a_server_that_is_down_is_reported_at_once() -> None:
    down = Recorder().start()
    down.stop()
    started = time.monotonic()
    problem = monitor.ping(down.url, "start")
    assert problem is not None and problem.startswith("healthchecks start ping:")
    assert time.monotonic() - started < 5


def test_no_ping_waits_longer_than_its_bound(server: Recorder) -> None:
    server.delay = 5
    started = time.monotonic()
    problem = monitor.ping(server.url, "success", timeout=1)
    assert time.monotonic() - started < 2.5
    assert problem is not None  # reported, never raised
    assert monitor.PING_TIMEOUT == 10


def test_apprise_json_webhook_receives_the_message(server: Recorder) -> None:
    url = f"json://127.0.0.1:{server.port}/hook"
    assert monitor.notify([url], "routine FAILED", "backup: failed", ok=False) is None
    assert len(server.received) == 1
    sent = json.loads(server.received[0].body)
    assert sent["title"] == "routine FAILED"
    assert sent["message"] == "backup: failed"
    assert sent["type"] == "failure"


def test_apprise_problems_never_name_the_url(server: Recorder) -> None:
    server.status = 500
    problem = monitor.notify(
        [f"json://127.0.0.1:{server.port}/t0ken", "nonsense://x"], "t", "b", ok=True
    )
    assert problem is not None
    assert "entry 2" in problem and "t0ken" not in problem


def _metrics(stack: str, value: float) -> list[Metric]:
    labels = {"project": "vault", "stack": stack}
    return [
        Metric("recoverctl_routine_last_exit_status", "Exit status.", value, labels),
        Metric("recoverctl_backup_last_size_bytes", "Size.", 1024, labels),
    ]


def test_textfile_is_atomic_world_readable_and_keeps_the_other_stack(tmp_path: Path) -> None:
    path = tmp_path / "recoverctl.prom"
    assert monitor.write_textfile(path, _metrics("dev", 0), {"project": "vault", "stack": "dev"}) is None
    assert monitor.write_textfile(path, _metrics("prod", 1), {"project": "vault", "stack": "prod"}) is None
    assert monitor.write_textfile(path, _metrics("dev", 3), {"project": "vault", "stack": "dev"}) is None
    text = path.read_text()
    assert text.count("# HELP recoverctl_routine_last_exit_status") == 1
    assert 'recoverctl_routine_last_exit_status{project="vault",stack="dev"} 3' in text
    assert 'recoverctl_routine_last_exit_status{project="vault",stack="prod"} 1' in text
    assert 'stack="dev"} 0' not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["recoverctl.prom"]  # no partial left


def test_textfile_in_a_missing_folder_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    problem = monitor.write_textfile(tmp_path / "nope" / "x.prom", _metrics("dev", 0), {})
    assert problem is not None and "x.prom" in problem
