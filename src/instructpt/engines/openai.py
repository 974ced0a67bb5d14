"""OpenAI-compatible servers (vLLM, SGLang, TGI, llama.cpp, `transformers serve`), one or many.

Requests go to `/v1/completions` with greedy settings and bounded concurrency per endpoint.
Prompts are sent as token ids by default (`prompt: [1, ...]`), so the server adds no second
BOS (SPEC §2); vLLM and SGLang accept this. For servers that only take text, `prompt_format
="text"` sends the text with `add_special_tokens: false` (honoured by vLLM and `transformers
serve`; for llama.cpp's server, start it so that it does not add BOS, or use the ids form).

With several base URLs, requests are spread over the endpoints; a request that times out or
gets a 429/5xx/connection error is retried, with exponential backoff, on the next healthy
endpoint, and an endpoint that keeps failing is rested for a while. Model name and context
length are checked against `/v1/models` before the first request. The API key comes from the
environment (`OPENAI_API_KEY` by default) and is never logged.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Sequence
from typing import Any

from ..errors import MissingExtraError, UsageError
from ..tokenization import Tokenizer, load_tokenizer
from .base import Completion, Engine, EngineError, Request
from .registry import EngineOptions

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIEngine(Engine):
    name = "openai"

    def __init__(
        self,
        base_urls: Sequence[str],
        model: str,
        tokenizer: Tokenizer,
        max_model_len: int = 4096,
        concurrency: int = 64,
        timeout: float = 600.0,
        max_retries: int = 8,
        api_key: str | None = None,
        prompt_format: str = "ids",
        check_server: bool = True,
    ) -> None:
        super().__init__(tokenizer, max_model_len)
        if not base_urls:
            raise UsageError("the openai engine needs --base-url (one or more)")
        if prompt_format not in ("ids", "text"):
            raise UsageError("--prompt-format must be ids or text")
        self.base_urls = [u.rstrip("/") for u in base_urls]
        self.model = model
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.prompt_format = prompt_format
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._rest_until = [0.0] * len(self.base_urls)
        self._next = 0
        self.stats = {"requests": 0, "retries": 0, "failovers": 0}
        self._client: Any = None
        self._gates: list[asyncio.Semaphore] = []
        self._loop: Any = None
        self.send_extras = True  # vLLM-style extras (skip_special_tokens, add_special_tokens, ...)
        if check_server:
            self.check_servers()

    @classmethod
    def from_options(cls, options: EngineOptions) -> OpenAIEngine:
        extra = options.extra
        key_env = extra.get("api_key_env", "OPENAI_API_KEY")
        return cls(
            base_urls=extra.get("base_urls", []),
            model=options.model,
            tokenizer=load_tokenizer(options.tokenizer or options.model),
            max_model_len=options.max_model_len,
            concurrency=extra.get("concurrency", 64),
            timeout=extra.get("timeout", 600.0),
            max_retries=extra.get("max_retries", 8),
            api_key=os.environ.get(key_env),
            prompt_format=extra.get("prompt_format", "ids"),
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.model, "endpoints": len(self.base_urls),
                "prompt_format": self.prompt_format}  # fmt: skip

    def check_servers(self) -> None:
        """Refuse to start if a server serves another model or a shorter context."""
        httpx = _httpx()
        for url in self.base_urls:
            try:
                response = httpx.get(f"{url}/models", headers=self._headers, timeout=30)
                response.raise_for_status()
                served = response.json().get("data", [])
            except Exception as exc:  # noqa: BLE001 - reported as one line
                raise UsageError(f"cannot reach the server at {url}: {type(exc).__name__}: {exc}") from None
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
            self._client = httpx.AsyncClient(timeout=self.timeout, limits=limits, headers=self._headers)
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
        async with httpx.AsyncClient(timeout=self.timeout, limits=limits, headers=self._headers) as client:
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
        for attempt in range(self.max_retries + 1):
            previous = endpoint
            endpoint = self._pick(previous)
            if attempt:
                self.stats["retries"] += 1
                self.stats["failovers"] += endpoint != previous
                await asyncio.sleep(min(30.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random()))
            async with gates[endpoint]:
                self.stats["requests"] += 1
                try:
                    response = await client.post(f"{self.base_urls[endpoint]}/completions", json=payload)
                except Exception as exc:  # noqa: BLE001 - timeouts and connection errors are retried
                    last_error = f"{type(exc).__name__}: {exc}"
                    self._rest_until[endpoint] = time.monotonic() + min(60.0, 2.0 * (attempt + 1))
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
            if response.status_code in RETRY_STATUS:
                last_error = f"HTTP {response.status_code}"
                self._rest_until[endpoint] = time.monotonic() + min(60.0, 2.0 * (attempt + 1))
                continue
            if response.status_code >= 400:
                raise EngineError(f"{self.base_urls[endpoint]} answered HTTP {response.status_code}: "
                                  f"{response.text[:300]}")  # fmt: skip
            choice = response.json()["choices"][0]
            usage = response.json().get("usage") or {}
            counted = usage.get("prompt_tokens")
            if (
                self.prompt_format == "text"
                and isinstance(counted, int)
                and counted != len(request.prompt_ids)
            ):
                raise EngineError(
                    f"{self.base_urls[endpoint]} counted {counted} prompt tokens where the prompt has "
                    f"{len(request.prompt_ids)}: it adds special tokens (a second BOS?) or tokenizes "
                    "differently; use --prompt-format ids, or serve the synthesizer's own tokenizer "
                    "without BOS insertion"
                )
            text = choice.get("text", "")
            n_tokens = usage.get("completion_tokens")
            if n_tokens is None:
                n_tokens = len(self.tokenizer.encode(text))
            reason = "length" if choice.get("finish_reason") == "length" else "stop"
            return Completion(text, int(n_tokens), reason)
        raise EngineError(
            f"a request failed {self.max_retries + 1} times on every endpoint; last: {last_error}"
        )


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise MissingExtraError("the openai engine", "openai", "httpx") from None
    return httpx
