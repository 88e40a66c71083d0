"""`mqguard status` against real HTTP servers that answer what a daemon would not."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Iterator, Tuple

import pytest

from mqguard.cli.status import StatusError, fetch, run_status
from tests.conftest import Harness


def serve(code: int, body: bytes) -> Tuple[HTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/status"


@pytest.fixture
def garbage() -> Iterator[str]:
    server, url = serve(200, b"<html>\x1b[31mnot json</html>")
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def test_a_non_json_answer_is_explained_not_dumped(garbage: str) -> None:
    with pytest.raises(StatusError) as info:
        fetch(garbage)
    msg = str(info.value)
    assert "not JSON" in msg and "HTTP 200" in msg and "metrics.listen" in msg
    assert "Expecting value" not in msg and "\x1b" not in msg


def test_json_that_is_not_a_status_is_explained() -> None:
    server, url = serve(503, b'["a list"]')
    try:
        with pytest.raises(StatusError, match="not mqguard's status"):
            fetch(url)
    finally:
        server.shutdown()
        server.server_close()


def test_status_command_exits_1_with_the_explanation(sim: Harness, garbage: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    port = garbage.split(":")[2].split("/")[0]
    sim.configure(metrics={"listen": f"127.0.0.1:{port}"})
    from mqguard import config

    assert run_status(config.load(str(sim.conf)), as_json=False) == 1
    err = capsys.readouterr().err
    assert err.startswith("mqguard status: something answers at") and "not JSON" in err
