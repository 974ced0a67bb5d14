"""A tiny OpenAI-compatible server for tests: the rules engine behind /v1/completions, or a
failing one (every completion answered with an HTTP error), listing its model like a healthy
server. conftest.py's `servers` fixture starts as many as a test asks for."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from instructpt.engines.rules import respond


def serve(tokenizer: Any, model: str = "tiny", max_model_len: int = 4096, fail: int | None = None
          ) -> tuple[ThreadingHTTPServer, str, list[dict]]:  # fmt: skip
    """(server, its /v1 URL, the request bodies it got). `fail`: an HTTP status (e.g. 503) to
    answer every completion with instead of the rules engine's text."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(200, {"data": [{"id": model, "max_model_len": max_model_len}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            if fail is not None:
                return self._send(fail, {"error": f"failing on purpose with HTTP {fail}"})
            prompt = body["prompt"]
            if isinstance(prompt, list):
                prompt = tokenizer.backend.decode(prompt, skip_special_tokens=False)
            out = respond(prompt)
            self._send(200, {"choices": [{"text": out, "finish_reason": "stop"}],
                             "usage": {"completion_tokens": min(len(tokenizer.encode(out)) + 1,
                                                                body["max_tokens"])}})  # fmt: skip

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1", seen
