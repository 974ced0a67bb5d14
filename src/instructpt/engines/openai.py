"""OpenAI-compatible servers (vLLM, SGLang, TGI, llama.cpp, `transformers serve`), one or many.

Requests go to `/v1/completions` with greedy settings and bounded concurrency per endpoint.
Prompts are sent as token ids by default (`prompt: [1, ...]`), so the server adds no second
BOS (docs/method.md §2); vLLM and SGLang accept this. For servers that only take text, `prompt_format
="text"` sends the text with `add_special_tokens: false` (honoured by vLLM and `transformers
serve`; for llama.cpp's server, start it so that it does not add BOS, or use the ids form).

With several base URLs, requests are spread over the endpoints; a request that times out or
gets a 429/5xx/connection error is retried, with exponential backoff (or after the server's
`Retry-After`, capped), on the next healthy endpoint, and an endpoint that keeps failing is
rested for a while. Every answer is validated (JSON completion object, one choice with a text,
finish_reason stop/length, a sane `usage` no larger than the request allows: openai_answers.py);
a malformed one is retried like a 5xx and never returned as a generation. No retry starts once a
request has been failing for `retry_budget` seconds, and each attempt gets at most `timeout`
seconds, so a dead or hanging server fails the run within about `retry_budget + timeout` (90 +
60 s by default) with one line naming the endpoint. Model name and context length are checked
against `/v1/models` before the first request. The API key comes from the environment
(`OPENAI_API_KEY` by default), is never logged, and is redacted from every error message
(servers echo it).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, field_validator

from ..errors import MissingExtraError, UsageError
from ..tokenization import Tokenizer, load_tokenizer
from .base import Completion, Engine, EngineError, Request
from .openai_answers import BadAnswer, one_line, read_completion, secret_forms
from .options import DEFAULT_MAX_MODEL_LEN, EngineOptions

BACKOFF_CAP = 10.0  # seconds between two attempts of a request, before jitter
DEFAULT_TIMEOUT = 60.0  # seconds one attempt may take
DEFAULT_RETRY_BUDGET = 90.0  # seconds a request may keep failing before the run fails
# seconds to open a connection: a non-routable address (a typo, a firewall dropping packets)
# fails the start-up check within it, not after the request timeout
DEFAULT_CONNECT_TIMEOUT = 10.0
NEEDS_BASE_URLS = (
    "the openai engine needs base_urls: --base-url URL (repeatable), -O base_urls=[URL, ...], "
    "or synthesize.engine_options: {base_urls: [URL, ...]} in a run config"
)


class OpenAIServerError(EngineError, UsageError):
    """A server failed or answered garbage past the retry budget: one line for the user (the CLI
    prints UsageErrors without a traceback), naming the endpoint, the API key redacted."""


class OpenAIOptions(EngineOptions):
    base_urls: list[str] = Field(
        [],
        description="OpenAI-compatible servers, e.g. http://localhost:8000/v1; requests are spread over "
        "them and a failing one is retried elsewhere (--base-url, repeatable).",
    )
    concurrency: int = Field(64, ge=1, description="Requests in flight per server.")
    prompt_format: Literal["ids", "text"] = Field(
        "ids",
        description="Send prompts as token ids (one BOS guaranteed) or as text with "
        "add_special_tokens=false.",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key (never logged)."
    )
    request_timeout: float = Field(
        DEFAULT_TIMEOUT,
        gt=0,
        description="Seconds one request may take before it is retried "
        "(raise it for slow or queueing servers).",
    )
    connect_timeout: float = Field(
        DEFAULT_CONNECT_TIMEOUT,
        gt=0,
        description="Seconds to open a connection to a server (the start-up check and each request) "
        "before it counts as unreachable.",
    )
    retry_budget: float = Field(
        DEFAULT_RETRY_BUDGET,
        ge=0,
        description="Seconds a request may keep failing (errors, timeouts, "
        "malformed answers) before the run stops; no retry starts after it.",
    )
    max_retries: int | None = Field(
        None, ge=0, description="Most retries of one request [default: only the retry budget limits them]."
    )

    @field_validator("base_urls", mode="before")
    @classmethod
    def _one_url(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value  # `-O base_urls=http://...`


class OpenAIEngine(Engine):
    name = "openai"
    Options = OpenAIOptions
    concurrent = True  # many requests in flight per server, no barrier between rounds

    def __init__(
        self,
        base_urls: Sequence[str],
        model: str,
        tokenizer: Tokenizer,
        max_model_len: int = DEFAULT_MAX_MODEL_LEN,
        concurrency: int = 64,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        api_key: str | None = None,
        prompt_format: str = "ids",
        check_server: bool = True,
        retry_budget: float = DEFAULT_RETRY_BUDGET,
        backoff: float = 0.5,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        super().__init__(tokenizer, max_model_len)
        if not base_urls:
            raise UsageError(NEEDS_BASE_URLS)
        if prompt_format not in ("ids", "text"):
            raise UsageError("--prompt-format must be ids or text")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise UsageError(f"--request-timeout must be a positive number of seconds, got {timeout}")
        if not (retry_budget >= 0 and math.isfinite(retry_budget)):
            raise UsageError(f"--retry-budget must be zero or more seconds, got {retry_budget}")
        if not (connect_timeout > 0 and math.isfinite(connect_timeout)):
            raise UsageError(f"--connect-timeout must be a positive number of seconds, got {connect_timeout}")
        self.base_urls = [u.rstrip("/") for u in base_urls]
        self.model = model
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.retry_budget = float(retry_budget)
        self.max_retries = max_retries  # None: only the time budget limits retries
        self.backoff = backoff
        self.prompt_format = prompt_format
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._secrets = secret_forms(api_key)
        self._rest_until = [0.0] * len(self.base_urls)
        self._not_before = [0.0] * len(self.base_urls)  # Retry-After, per endpoint
        self._next = 0
        self.stats = {"requests": 0, "retries": 0, "failovers": 0}
        self._client: Any = None
        self._gates: list[asyncio.Semaphore] = []
        self._loop: Any = None
        self.send_extras = True  # vLLM-style extras (skip_special_tokens, add_special_tokens, ...)
        if check_server:
            self.check_servers()

    @classmethod
    def from_options(cls, options: OpenAIOptions) -> OpenAIEngine:
        options = cls.options_of(options)
        if not options.base_urls:  # said before loading the tokenizer
            raise UsageError(NEEDS_BASE_URLS)
        return cls(
            base_urls=options.base_urls,
            model=options.model,
            tokenizer=load_tokenizer(options.tokenizer or options.model),
            max_model_len=options.max_model_len,
            concurrency=options.concurrency,
            timeout=options.request_timeout,
            retry_budget=options.retry_budget,
            connect_timeout=options.connect_timeout,
            max_retries=options.max_retries,
            api_key=os.environ.get(options.api_key_env),
            prompt_format=options.prompt_format,
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.model, "endpoints": len(self.base_urls),
                "prompt_format": self.prompt_format}  # fmt: skip

    def redact(self, text: str) -> str:
        """`text` without the API key (in any of the forms a server may echo it)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _fail(self, message: str) -> OpenAIServerError:
        return OpenAIServerError(self.redact(one_line(message, 500)))

    def check_servers(self) -> None:
        """Refuse to start if a server serves another model or a shorter context."""
        httpx = _httpx()
        timeout = _timeout(min(30.0, self.timeout), self.connect_timeout)
        for url in self.base_urls:
            try:
                response = httpx.get(f"{url}/models", headers=self._headers, timeout=timeout)
                response.raise_for_status()
                served = response.json().get("data", [])
                if not isinstance(served, list) or not all(isinstance(m, dict) for m in served):
                    raise ValueError("/models has no list of models under 'data'")
            except Exception as exc:  # noqa: BLE001 - reported as one line
                detail = self._show(f"{type(exc).__name__}: {exc}")
                if isinstance(exc, httpx.ConnectTimeout):
                    detail = (f"no connection within {timeout.connect:g}s ({type(exc).__name__}); check the "
                              "URL and that the server is up, or raise --connect-timeout")  # fmt: skip
                elif isinstance(exc, httpx.TimeoutException):
                    detail = (f"no answer from {url}/models within {timeout.read:g}s ({type(exc).__name__}); "
                              "raise --request-timeout for a slow server")  # fmt: skip
                raise UsageError(f"cannot reach the server at {url}: {detail}") from None
            ids = [m.get("id") for m in served]
            match = next((m for m in served if m.get("id") == self.model), None)
            if not served:  # `transformers serve` lists only cached models: nothing to check
                continue
            if match is None:
                raise UsageError(
                    f"the server at {url} serves {ids}, not {self.model!r}; pass --model accordingly"
                )
            limit = match.get("max_model_len")
            if isinstance(limit, int) and limit < self.max_model_len:
                raise UsageError(
                    f"the server at {url} has a context of {limit} tokens, "
                    f"less than --max-model-len {self.max_model_len}"
                )

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return asyncio.run(self._generate_all(requests))

    async def agenerate(self, request: Request) -> Completion:
        """One request, for the barrier-free scheduler (a client per event loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            httpx = _httpx()
            limits = httpx.Limits(max_connections=self.concurrency * len(self.base_urls))
            self._client = httpx.AsyncClient(
                timeout=_timeout(self.timeout, self.connect_timeout), limits=limits, headers=self._headers
            )
            self._gates = [asyncio.Semaphore(self.concurrency) for _ in self.base_urls]
            self._loop = loop
        return await self._one(self._client, self._gates, request)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client, self._loop = None, None

    async def _generate_all(self, requests: Sequence[Request]) -> list[Completion]:
        httpx = _httpx()
        limits = httpx.Limits(max_connections=self.concurrency * len(self.base_urls))
        gates = [asyncio.Semaphore(self.concurrency) for _ in self.base_urls]
        async with httpx.AsyncClient(timeout=_timeout(self.timeout, self.connect_timeout), limits=limits,
                                     headers=self._headers) as client:  # fmt: skip
            return list(await asyncio.gather(*(self._one(client, gates, r) for r in requests)))

    def _pick(self, avoid: int | None) -> int:
        now = time.monotonic()
        order = [(self._next + k) % len(self.base_urls) for k in range(len(self.base_urls))]
        self._next = (self._next + 1) % len(self.base_urls)
        healthy = [i for i in order if self._rest_until[i] <= now and i != avoid]
        if healthy:
            return healthy[0]
        return min(order, key=lambda i: (i == avoid, self._rest_until[i]))

    async def _one(self, client: Any, gates: list[asyncio.Semaphore], request: Request) -> Completion:
        payload: dict[str, Any] = {
            "model": self.model,
            "prompt": request.prompt_ids if self.prompt_format == "ids" else request.prompt,
            "max_tokens": request.max_new_tokens,
            "temperature": 0.0,
        }
        if self.send_extras:
            payload.update({"top_p": 1.0, "n": 1, "skip_special_tokens": True})
            if self.prompt_format == "text":
                payload["add_special_tokens"] = False
        last_error = ""
        endpoint: int | None = None
        attempts = 0
        started = 0.0
        deadline = math.inf  # set when the first attempt starts
        while True:
            previous = endpoint
            endpoint = self._pick(previous)
            url = f"{self.base_urls[endpoint]}/completions"
            if attempts:
                now = time.monotonic()
                delay = min(BACKOFF_CAP, self.backoff * 2 ** (attempts - 1)) * (0.5 + random.random())
                delay = max(delay, self._not_before[endpoint] - now)  # the server's Retry-After
                if (self.max_retries is not None and attempts > self.max_retries) or now + delay >= deadline:
                    break
                self.stats["retries"] += 1
                self.stats["failovers"] += endpoint != previous
                await asyncio.sleep(delay)
            async with gates[endpoint]:
                now = time.monotonic()
                if not attempts:
                    started, deadline = now, now + self.retry_budget
                elif now >= deadline:
                    break
                attempt_timeout = self.timeout
                attempts += 1
                self.stats["requests"] += 1
                try:
                    response = await asyncio.wait_for(
                        client.post(
                            url, json=payload, timeout=_timeout(attempt_timeout, self.connect_timeout)
                        ),
                        attempt_timeout,
                    )
                except Exception as exc:  # noqa: BLE001 - timeouts and connection errors are retried
                    if isinstance(exc, asyncio.TimeoutError) or "Timeout" in type(exc).__name__:
                        last_error = (
                            f"{url} gave no answer within {attempt_timeout:g}s ({type(exc).__name__})"
                        )
                    else:
                        last_error = f"{url}: {type(exc).__name__}: {self._show(str(exc))}"
                    self._rest(endpoint, attempts)
                    continue
            if (
                response.status_code == 422
                and "skip_special_tokens" in payload
                and "nexpected field" in response.text
            ):
                # A strict server (`transformers serve`) refuses vLLM's extra fields: send the
                # standard ones only; the prompt-token check below still guards the single BOS.
                self.send_extras = False
                payload = {k: payload[k] for k in ("model", "prompt", "max_tokens", "temperature")}
                continue
            try:
                return read_completion(response, request, url, self._show, self.prompt_format,
                                       self.tokenizer.encode)  # fmt: skip
            except BadAnswer as bad:
                last_error = str(bad)
                if not bad.retry:
                    raise self._fail(last_error) from None
                self._rest(endpoint, attempts)
                if bad.retry_after is not None:
                    last_error += f" (Retry-After {bad.retry_after:g}s)"
                    self._not_before[endpoint] = time.monotonic() + bad.retry_after
                    self._rest_until[endpoint] = max(self._rest_until[endpoint], self._not_before[endpoint])
        raise self._fail(
            f"{last_error}; gave up after {attempts} attempts in {time.monotonic() - started:.0f}s "
            f"(retry budget {self.retry_budget:g}s, request timeout {self.timeout:g}s: --retry-budget, "
            "--request-timeout)"
        )

    def _show(self, text: str, limit: int = 200) -> str:
        """Server-provided text for a message: redacted first, then one line, shortened."""
        return one_line(self.redact(str(text)), limit)

    def _rest(self, endpoint: int, attempts: int) -> None:
        self._rest_until[endpoint] = time.monotonic() + min(60.0, 2.0 * attempts)


def _timeout(seconds: float, connect: float = DEFAULT_CONNECT_TIMEOUT) -> Any:
    """One attempt's httpx timeout: at most `connect` s to connect, `seconds` for everything."""
    return _httpx().Timeout(seconds, connect=min(connect, seconds))


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise MissingExtraError("the openai engine", "openai", "httpx") from None
    return httpx
