"""A listener on 127.0.0.1 that stands where a Prefect Server's GraphQL API would be: it records
every request and answers with what the test's ``answer`` says (by default a GraphQL error for
every query). It is no Prefect Server: the tests use it to see what a pod asks its backend."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NOT_A_SERVER = {"errors": [{"message": "kjenv test listener: not a Prefect Server"}]}

Answer = Callable[[dict], Any]


class Recorder(BaseHTTPRequestHandler):
    requests: list[dict]
    lock: threading.Lock
    answer: Answer

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        with self.lock:
            self.requests.append(
                {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
            )
        try:
            query = json.loads(body)
        except ValueError:
            query = {}
        data = json.dumps(type(self).answer(query)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

    @classmethod
    def seen(cls) -> list[dict]:
        with cls.lock:
            return list(cls.requests)


@contextmanager
def listening(answer: Answer = lambda query: NOT_A_SERVER) -> Iterator[tuple[str, type[Recorder]]]:
    """The listener's endpoint (``http://127.0.0.1:PORT``) and its recorder, until the block
    ends."""
    handler = type(
        "Recorder",
        (Recorder,),
        {"requests": [], "lock": threading.Lock(), "answer": staticmethod(answer)},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=60)
