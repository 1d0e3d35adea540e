"""A real HTTP server on 127.0.0.1 that records what apprise posts to it.

It stands in for every apprise target in the tests (`json://127.0.0.1:PORT/PATH` for a staff room
or an automatic social network, `ntfy://127.0.0.1:PORT/TOPIC` where a throttled service is needed),
so the channels are tested through apprise's real HTTP code, never the internet.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Post:
    path: str
    body: dict | str

    @property
    def json(self) -> dict:
        assert isinstance(self.body, dict), f"not JSON: {self.body!r}"
        return self.body


class JsonSink:
    """Records every POST; answers 200, or the status set for a path in `statuses`.

    Use as a context manager: the server runs in a daemon thread while the block runs.
    """

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.statuses: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]

    def url(self, path: str = "/", scheme: str = "json") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def posts_to(self, path: str) -> list[Post]:
        with self._lock:
            return [p for p in self.posts if p.path.split("?")[0] == path]

    def __enter__(self) -> "JsonSink":
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                path = self.path.split("?")[0]
                with sink._lock:
                    sink.posts.append(Post(self.path, body))
                    status = sink.statuses.get(path, 200)
                reply = b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args) -> None:
                pass  # keep pytest's output for the assertions

        return Handler
