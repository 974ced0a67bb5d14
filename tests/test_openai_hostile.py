"""The openai engine against broken servers: every malformed answer is retried or fails the run
with one line naming the endpoint, never stored as a generation; the API key never leaks."""

from __future__ import annotations

import email.utils
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from instructpt.engines.base import EngineError, Request
from instructpt.engines.openai import OpenAIEngine
from instructpt.engines.openai_answers import RETRY_AFTER_CAP, retry_after_seconds
from instructpt.engines.rules import respond
from instructpt.errors import UsageError

from .test_pipeline import make_corpus, snapshot

KEY = "sk-test-SECRET-0123456789"
MAX_TOKENS = 20
GOOD = {"choices": [{"text": "A fine answer.", "finish_reason": "stop"}], "usage": {"completion_tokens": 4}}
HTML = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"


def reply(status: int = 200, body: Any = GOOD, ctype: str = "application/json", **headers: str) -> dict:
    """A scripted answer; '{auth}' in a body is replaced by the Authorization header received."""
    return {"status": status, "body": body, "ctype": ctype, "headers": headers}


class Server:
    """A local /v1 server: GET /models is healthy; POST /completions answers from `script`
    (one behaviour per request, the last one repeated), or `answer(prompt_text)` when None."""

    def __init__(self, tokenizer: Any, script: list[Any] | None = None,
                 answer: Callable[[str], Any] | None = None) -> None:  # fmt: skip
        self.script = list(script or [])
        self.answer = answer
        self.times: list[float] = []
        self.release = threading.Event()  # frees handlers told to "hang"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, r: dict) -> None:
                body = r["body"]
                data = body if isinstance(body, str) else json.dumps(body)
                data = data.replace("{auth}", self.headers.get("Authorization", "")).encode()
                self.send_response(r["status"])
                self.send_header("Content-Type", r["ctype"])
                for name, value in r["headers"].items():
                    self.send_header(name.replace("_", "-"), value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(reply(body={"data": [{"id": "tiny", "max_model_len": 4096}]}))

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.times.append(time.monotonic())
                if outer.answer is not None:
                    prompt = tokenizer.backend.decode(body["prompt"], skip_special_tokens=False)
                    r = outer.answer(prompt)
                    if r is None:  # the rules engine, as a healthy server
                        out = respond(prompt)
                        usage = {"completion_tokens": min(len(tokenizer.encode(out)) + 1, body["max_tokens"])}
                        r = reply(body={"choices": [{"text": out, "finish_reason": "stop"}], "usage": usage})
                else:
                    r = outer.script[min(len(outer.times) - 1, len(outer.script) - 1)]
                if r == "hang":
                    outer.release.wait(120)
                    return
                self._send(r)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tokenizer):
    made: list[Server] = []

    def make(script: list[Any] | None = None, answer: Callable[[str], Any] | None = None) -> Server:
        made.append(Server(tokenizer, script, answer))
        return made[-1]

    yield make
    for s in made:
        s.close()


def engine_for(url: str, tokenizer: Any, **kwargs: Any) -> OpenAIEngine:
    settings: dict[str, Any] = {"timeout": 2.0, "retry_budget": 3.0, "backoff": 0.01, "api_key": KEY}
    return OpenAIEngine([url], "tiny", tokenizer, **{**settings, **kwargs})


def one_request(engine: OpenAIEngine, tokenizer: Any) -> Any:
    prompt = "<s> The river Elbe flows through Dresden."
    (completion,) = engine.generate([Request(prompt, tokenizer.encode(prompt), MAX_TOKENS)])
    return completion


def choice(**fields: Any) -> dict:
    return {"choices": [{"text": "A fine answer.", "finish_reason": "stop", **fields}],
            "usage": {"completion_tokens": 4}}  # fmt: skip


# server behaviour -> retried (a malformed answer is retried, the run fails only if it persists)
# or not (a redirect or a client error fails at once); the one-line message must match.
CASES = [
    ("empty choice", reply(body={"choices": [{}]}), True, r"choices\[0\]\.text is missing"),
    ("no choices", reply(body={"choices": []}), True, r"choices that is not a list of one"),
    ("null text", reply(body=choice(text=None)), True, r"choices\[0\]\.text is null"),
    ("html 200", reply(body=HTML, ctype="text/html"), True, r"text/html, not JSON.*Bad Gateway"),
    ("garbage json", reply(body='{"choices": [{"te'), True, r"not valid JSON"),
    ("json list", reply(body=[1, 2]), True, r"a JSON list"),
    ("error object", reply(body={"error": {"message": "CUDA out of memory"}}), True, r"CUDA out of memory"),
    ("usage not object", reply(body={**GOOD, "usage": "lots"}), True, r"usage is a str"),
    ("bad token count", reply(body={**GOOD, "usage": {"completion_tokens": "many"}}), True,
     r"usage\.completion_tokens is 'many'"),
    ("more tokens than asked", reply(body={"choices": [{"text": HTML, "finish_reason": "stop"}],
                                           "usage": {"completion_tokens": 900}}), True,
     r"900 completion tokens for max_tokens 20"),
    ("aborted", reply(body=choice(finish_reason="abort")), True, r"finish_reason 'abort'"),
    ("no finish_reason", reply(body=choice(finish_reason=None)), True, r"finish_reason None"),
    ("503 echoing the key", reply(503, {"error": "overloaded, key {auth}"}), True, r"HTTP 503.*overloaded"),
    ("302", reply(302, "", "text/html", Location="https://login.example/sso"), False,
     r"HTTP 302.*redirect.*login\.example"),
    ("401 echoing the key", reply(401, {"error": "invalid key {auth}"}), False, r"HTTP 401.*invalid key"),
]  # fmt: skip
RETRIED = [c for c in CASES if c[2]]


@pytest.mark.parametrize("name, bad, retried, message", RETRIED, ids=[c[0] for c in RETRIED])
def test_a_malformed_answer_is_retried_then_succeeds(server, tokenizer, name, bad, retried, message):
    s = server([bad, reply()])
    completion = one_request(engine_for(s.url, tokenizer), tokenizer)
    assert (completion.text, completion.n_tokens, completion.finish_reason) == ("A fine answer.", 4, "stop")
    assert len(s.times) == 2


@pytest.mark.parametrize("name, bad, retried, message", CASES, ids=[c[0] for c in CASES])
def test_a_persistently_broken_server_fails_with_one_redacted_line(server, tokenizer, name, bad, retried,
                                                                   message):  # fmt: skip
    s = server([bad])
    engine = engine_for(s.url, tokenizer, retry_budget=0.5)
    with pytest.raises(EngineError) as info:
        one_request(engine, tokenizer)
    text = str(info.value)
    assert isinstance(info.value, UsageError)  # the CLI prints it as one line, no traceback
    assert "\n" not in text and len(text) < 600, text
    assert f"{s.url}/completions" in text, text
    assert KEY not in text and "SECRET" not in text, text
    assert _search(message, text), text
    assert (len(s.times) > 1) == retried


def _search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


def test_prompt_tokens_of_another_type_are_refused(server, tokenizer):
    s = server([reply(body={**GOOD, "usage": {"completion_tokens": 4, "prompt_tokens": -3}})])
    with pytest.raises(EngineError, match=r"usage\.prompt_tokens is -3"):
        one_request(engine_for(s.url, tokenizer, retry_budget=0.2), tokenizer)


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_is_honoured(server, tokenizer, form):
    value = "2" if form == "seconds" else email.utils.formatdate(time.time() + 2, usegmt=True)
    s = server([reply(503, {"error": "busy"}, Retry_After=value), reply()])
    one_request(engine_for(s.url, tokenizer, retry_budget=10.0), tokenizer)
    assert len(s.times) == 2 and s.times[1] - s.times[0] >= 0.95  # the date has 1 s resolution


def test_retry_after_is_capped_and_parsed_defensively():
    now = time.time()
    assert retry_after_seconds("3", now) == 3.0
    assert retry_after_seconds("999999", now) == RETRY_AFTER_CAP
    assert retry_after_seconds(email.utils.formatdate(now + 3600, usegmt=True), now) == RETRY_AFTER_CAP
    assert 9 <= retry_after_seconds(email.utils.formatdate(now + 10, usegmt=True), now) <= 10
    assert retry_after_seconds(email.utils.formatdate(now - 100, usegmt=True), now) == 0.0
    for junk in (None, "", "soon", "-5", "nan", "inf"):
        assert retry_after_seconds(junk, now) is None


def test_a_retry_after_beyond_the_budget_fails_at_once(server, tokenizer):
    s = server([reply(429, {"error": "slow down"}, Retry_After="30")])
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"HTTP 429.*Retry-After 30s"):
        one_request(engine_for(s.url, tokenizer, retry_budget=5.0), tokenizer)
    assert time.monotonic() - started < 3 and len(s.times) == 1


@pytest.fixture
def hanging_server():
    """Accepts connections and reads, never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    stop.set()
    listener.close()
    for conn in held:
        conn.close()


def test_a_hanging_server_fails_within_the_budget(hanging_server, tokenizer):
    engine = engine_for(hanging_server, tokenizer, timeout=0.5, retry_budget=0.8, check_server=False)
    started = time.monotonic()
    with pytest.raises(EngineError) as info:
        one_request(engine, tokenizer)
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, elapsed
    text = str(info.value)
    assert "\n" not in text and f"{hanging_server}/completions gave no answer within 0.5s" in text, text
    assert "gave up after 2 attempts" in text, text


def test_a_hanging_server_fails_the_startup_check_quickly(hanging_server, tokenizer):
    started = time.monotonic()
    with pytest.raises(UsageError, match="cannot reach the server"):
        engine_for(hanging_server, tokenizer, timeout=0.5)
    assert time.monotonic() - started < 3.0


def test_defaults_fail_a_dead_server_within_about_two_minutes(tokenizer):
    engine = OpenAIEngine(["http://127.0.0.1:9/v1"], "tiny", tokenizer, check_server=False)
    assert engine.retry_budget + engine.timeout <= 150  # the last attempt starts within the budget


def test_the_key_is_redacted_in_its_escaped_forms_too(server, tokenizer):
    key = 'sk/with"odd+chars'
    s = server([reply(401, '{"error": "bad key: {auth} / sk\\/with\\"odd+chars / sk%2Fwith%22odd%2Bchars"}')])
    with pytest.raises(EngineError) as info:
        one_request(engine_for(s.url, tokenizer, api_key=key), tokenizer)
    assert "odd" not in str(info.value), str(info.value)


# End to end through the CLI: a server that breaks on the shard holding doc 9.


def _cli(tmp_path: Path, url: str, out: str, *extra: str) -> subprocess.CompletedProcess:
    tok = tmp_path / "tokenizer.json"
    return subprocess.run(
        [sys.executable, "-m", "instructpt", "synthesize", str(tmp_path / "corpus.jsonl"),
         "-o", str(tmp_path / out), "--engine", "openai", "--base-url", url, "--model", "tiny",
         "--tokenizer", str(tok), "--shard-size", "4", "--no-progress", "--request-timeout", "5",
         "--retry-budget", "1", *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "OPENAI_API_KEY": KEY},
    )  # fmt: skip


@pytest.mark.parametrize(
    "bad",
    [reply(body={"choices": [{}]}), reply(500, {"error": "internal error for token {auth}"})],
    ids=["empty choice", "500 echoing the key"],
)
def test_cli_a_broken_server_is_one_line_the_shard_is_redone_on_resume(server, tokenizer, tmp_path, bad):
    make_corpus(tmp_path / "corpus.jsonl", n=12)
    tokenizer.backend.save(str(tmp_path / "tokenizer.json"))
    broken = {"on": True}
    s = server(answer=lambda prompt: bad if broken["on"] and "number 9 " in prompt else None)

    first = _cli(tmp_path, s.url, "out")
    assert first.returncode != 0, first.stderr
    assert "Traceback" not in first.stderr and first.stderr.strip().count("\n") == 0, first.stderr
    assert f"{s.url}/completions" in first.stderr and KEY not in first.stderr, first.stderr
    shards = tmp_path / "out" / "shards"
    failed = list(shards.glob("*.failed.json"))
    assert len(failed) == 1 and KEY not in failed[0].read_text()
    done = [p for p in shards.glob("part-*.json") if not p.name.endswith(".failed.json")]
    assert done and len(done) < 3  # finished shards are kept, the broken one is not written

    broken["on"] = False
    assert _cli(tmp_path, s.url, "out").returncode == 0
    assert _cli(tmp_path, s.url, "clean").returncode == 0
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "clean")


def test_cli_a_server_hanging_mid_run_fails_in_bounded_time(server, tokenizer, tmp_path):
    make_corpus(tmp_path / "corpus.jsonl", n=12)
    tokenizer.backend.save(str(tmp_path / "tokenizer.json"))
    s = server(answer=lambda prompt: "hang" if "number 9 " in prompt else None)
    started = time.monotonic()
    proc = _cli(tmp_path, s.url, "out", "--request-timeout", "0.5")
    assert time.monotonic() - started < 60
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"{s.url}/completions gave no answer within 0.5s" in proc.stderr, proc.stderr
