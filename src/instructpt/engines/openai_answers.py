"""What an OpenAI-compatible server answers, checked (engines/openai.py sends the requests).

Every answer is validated before it counts as a generation: a JSON completion object with one
choice holding a text, finish_reason stop/length (TGI's names too), a sane `usage` no larger
than the request allows, and, for text prompts, the prompt counted as we tokenized it (no second
BOS). `BadAnswer.retry` says whether another attempt may succeed (429/5xx, malformed bodies) or
not (redirects, other 4xx, a tokenizer mismatch). Server text in messages goes through `show`,
which redacts the API key (`secret_forms`: the forms a server may echo it in).
"""

from __future__ import annotations

import email.utils
import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from .base import Completion, Request

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
RETRY_AFTER_CAP = 60.0  # seconds: a longer Retry-After is not waited for in full
# finish_reason values meaning "ended by EOS/stop" (TGI says eos_token/stop_sequence) or "max_tokens"
FINISH_REASONS = {"stop": "stop", "eos_token": "stop", "eos": "stop", "stop_sequence": "stop",
                  "length": "length"}  # fmt: skip


class BadAnswer(Exception):
    """A response that is not a usable completion; `retry` when another attempt may succeed."""

    def __init__(self, message: str, retry: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), capped at
    RETRY_AFTER_CAP; None when absent or unparseable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    delay = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, min(delay, RETRY_AFTER_CAP))


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_completion(response: Any, request: Request, url: str, show: Callable[..., str], prompt_format: str,
                    encode: Callable[[str], list[int]]) -> Completion:  # fmt: skip
    """The completion in `response` (an httpx response to `request`, sent to `url`), or BadAnswer
    saying what is wrong with it. `show` makes server text safe for a message (the API key
    redacted); `encode` counts tokens when the server reports no usage."""
    status = response.status_code
    if 300 <= status < 400:
        where = response.headers.get("location", "?")
        raise BadAnswer(f"{url} answered HTTP {status}, a redirect to {show(where, 120)}: check "
                        "--base-url (a login page or proxy in the way?)", retry=False)  # fmt: skip
    snippet = show(response.text)
    if status in RETRY_STATUS:
        wait = retry_after_seconds(response.headers.get("retry-after"))
        raise BadAnswer(f"{url} answered HTTP {status}: {snippet}", retry_after=wait)
    if status >= 400:
        raise BadAnswer(f"{url} answered HTTP {status}: {snippet}", retry=False)
    if status != 200:
        raise BadAnswer(f"{url} answered HTTP {status} instead of 200: {snippet}")
    ctype = response.headers.get("content-type", "")
    if ctype and "json" not in ctype.lower():
        raise BadAnswer(f"{url} answered {ctype.split(';')[0].strip()}, not JSON: {snippet}")
    try:
        body = response.json()
    except ValueError:
        raise BadAnswer(f"{url} answered a body that is not valid JSON: {snippet}") from None
    if not isinstance(body, dict):
        raise BadAnswer(f"{url} answered a JSON {type(body).__name__}, not a completion: {snippet}")
    if body.get("error"):
        raise BadAnswer(f"{url} answered an error: {show(json.dumps(body['error']))}")
    choices = body.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        raise BadAnswer(f"{url} answered choices that is not a list of one object: {snippet}")
    choice = choices[0]
    text = choice.get("text")
    if not isinstance(text, str):
        what = "missing" if "text" not in choice else "null" if text is None else type(text).__name__
        raise BadAnswer(f"{url} answered a completion whose choices[0].text is {what}: {snippet}")
    reason = choice.get("finish_reason")
    if reason not in FINISH_REASONS:
        shown = show(repr(reason), 40)
        raise BadAnswer(f"{url} answered finish_reason {shown} (not stop or length)")
    usage = body.get("usage")
    usage = {} if usage is None else usage
    if not isinstance(usage, dict):
        raise BadAnswer(f"{url} answered a completion whose usage is a {type(usage).__name__}")
    for field in ("prompt_tokens", "completion_tokens"):
        value = usage.get(field)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise BadAnswer(f"{url} answered usage.{field} is {show(repr(value), 40)}")
    n_tokens = usage.get("completion_tokens")
    if n_tokens is not None and n_tokens > request.max_new_tokens:
        raise BadAnswer(f"{url} answered {n_tokens} completion tokens for max_tokens "
                        f"{request.max_new_tokens}: {show(text, 80)}")  # fmt: skip
    counted = usage.get("prompt_tokens")
    if prompt_format == "text" and counted is not None and counted != len(request.prompt_ids):
        raise BadAnswer(
            f"{url} counted {counted} prompt tokens where the prompt has "
            f"{len(request.prompt_ids)}: it adds special tokens (a second BOS?) or tokenizes "
            "differently; use --prompt-format ids, or serve the synthesizer's own tokenizer "
            "without BOS insertion",
            retry=False,
        )
    if n_tokens is None:  # no usage: count ourselves (re-encoding may differ a little)
        n_tokens = len(encode(text))
        if n_tokens > 2 * request.max_new_tokens + 16:
            raise BadAnswer(f"{url} answered a text of {n_tokens} tokens for max_tokens "
                            f"{request.max_new_tokens}: {show(text, 80)}")  # fmt: skip
        n_tokens = min(n_tokens, request.max_new_tokens)
    return Completion(text, int(n_tokens), FINISH_REASONS[reason])


def secret_forms(key: str | None) -> list[str]:
    """The API key as a server may echo it: raw, JSON-escaped, URL-encoded; longest first."""
    if not key:
        return []
    escaped = json.dumps(key)[1:-1]
    forms = {key, escaped, escaped.replace("/", "\\/"), urllib.parse.quote(key, safe=""),
             urllib.parse.quote_plus(key)}  # fmt: skip
    return sorted(forms, key=len, reverse=True)
