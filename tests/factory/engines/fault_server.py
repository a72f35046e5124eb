"""A tiny OpenAI-shaped HTTP server for fault injection only (429, 5xx, slow, malformed JSON).

The success path of the openai backend is tested against a real server (llama.cpp's); this one
exists to make a server misbehave on cue.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, str, float]  # status, body, seconds to wait first


def chat_reply(text: str = "hello there", n: int = 1) -> Reply:
    body = {
        "choices": [{"index": i, "message": {"role": "assistant", "content": f"{text} {i}"}, "finish_reason": "stop"}
                    for i in range(n)],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3 * n},
    }
    return 200, json.dumps(body), 0.0


def echo_headers(status: int = 400) -> Callable[[int, str, dict[str, Any]], Reply]:
    """A script whose every reply is `status` with a body echoing the request's headers, as real APIs'
    4xx bodies sometimes do (the FaultServer fills in `{headers}`)."""

    def script(number: int, path: str, payload: dict[str, Any]) -> Reply:
        return status, '{"error": {"message": "invalid request", "request_headers": "{headers}"}}', 0.0

    script.echoes_headers = True  # type: ignore[attr-defined]
    return script


def never_answers(*_: Any) -> Reply:
    """A hung server: accepts the connection, reads the request, never replies (within a test)."""
    return 200, "{}", 3600.0


class FaultServer:
    """Serves replies from `script(request_number, path, payload)`; records every request.

    A script made by `echo_headers` gets the request's headers (Python repr, as a careless server
    formats them) substituted for `{headers}` in its body."""

    def __init__(self, script: Callable[[int, str, dict[str, Any]], Reply],
                 probe: Callable[[str], Reply] = lambda path: (200, '{"data": []}', 0.0)):
        """GETs (the engine's liveness probe, GET /models) are answered by `probe(path)`, at once by
        default, and recorded in `probes`, apart from the POSTs in `requests`."""
        self.script = script
        self.probe = probe
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.probes: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append((self.path, payload, dict(self.headers)))
                status, body, delay = owner.script(len(owner.requests), self.path, payload)
                if getattr(owner.script, "echoes_headers", False):
                    body = body.replace('"{headers}"', json.dumps(repr(dict(self.headers))))
                self._reply(status, body, delay)

            def do_GET(self) -> None:  # noqa: N802
                owner.probes.append(self.path)
                self._reply(*owner.probe(self.path))

            def _reply(self, status: int, body: str, delay: float) -> None:
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(body.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
