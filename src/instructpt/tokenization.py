"""Exact token counting with the synthesizer's own tokenizer.

Everything that budgets a prompt goes through `Tokenizer.encode_batch`, which never
adds special tokens: the prompt text already starts with the literal BOS `<s>`
(SPEC §2), and a prompt with two BOS tokens is a bug. The wrapper accepts a
`tokenizers.Tokenizer`, a transformers tokenizer, any object with
`encode(text, add_special_tokens=False)`, or a path/model id to load one from.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import UsageError, first_line


class Tokenizer:
    """A thin, fast wrapper that encodes without special tokens."""

    def __init__(self, backend: Any, name: str = "") -> None:
        self.backend = backend
        self.name = name or type(backend).__name__
        self._encode_batch = self._pick_encoder(backend)
        self.splits_at_bos_eos = _splits_at(backend, ("<s>", "</s>"))

    @staticmethod
    def _pick_encoder(backend: Any):
        try:
            from tokenizers import Tokenizer as RustTokenizer
        except ImportError:  # pragma: no cover - tokenizers is a core dependency
            RustTokenizer = None  # type: ignore[assignment,misc]
        if RustTokenizer is not None and isinstance(backend, RustTokenizer):

            def encode_rust(texts: Sequence[str]) -> list[list[int]]:
                return [e.ids for e in backend.encode_batch(list(texts), add_special_tokens=False)]

            return encode_rust
        if callable(backend) and hasattr(backend, "batch_decode"):  # transformers tokenizer

            def encode_hf(texts: Sequence[str]) -> list[list[int]]:
                return backend(list(texts), add_special_tokens=False)["input_ids"]

            return encode_hf
        if hasattr(backend, "encode"):

            def encode_plain(texts: Sequence[str]) -> list[list[int]]:
                return [list(backend.encode(t, add_special_tokens=False)) for t in texts]

            return encode_plain
        raise UsageError(f"cannot use {type(backend).__name__} as a tokenizer: it has no encode()")

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self._encode_batch(texts) if texts else []

    def encode(self, text: str) -> list[int]:
        return self._encode_batch([text])[0]

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def char_offsets(self, text: str) -> list[tuple[int, int]] | None:
        """(start, end) character span of each token of `text`, where the backend knows them."""
        rust = getattr(self.backend, "backend_tokenizer", self.backend)
        if hasattr(rust, "encode") and hasattr(rust, "to_str"):  # tokenizers.Tokenizer
            return list(rust.encode(text, add_special_tokens=False).offsets)
        return None

    def decode(self, ids: Sequence[int]) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=True)

    def token_id(self, token: str) -> int | None:
        convert = getattr(self.backend, "token_to_id", None) or getattr(
            self.backend, "convert_tokens_to_ids", None
        )
        if convert is None:
            return None
        tid = convert(token)
        return tid if isinstance(tid, int) and tid >= 0 else None


def _splits_at(backend: Any, tokens: tuple[str, ...]) -> bool:
    """Whether text is cut at `tokens` before normalization, so that the pieces between
    them are tokenized independently: then ids(a + "</s>" + "<s>" + b) is ids(a + "</s>")
    + ids("<s>" + b) exactly, and a prompt's ids are the concatenation of its parts' ids.

    This holds for Hugging Face `tokenizers` (and transformers fast tokenizers built on it)
    when the tokens are registered as special added tokens that are not normalized.
    """
    rust = getattr(backend, "backend_tokenizer", backend)
    decoder = getattr(rust, "get_added_tokens_decoder", None)
    if decoder is None:
        return False
    try:
        from tokenizers import Tokenizer as RustTokenizer
    except ImportError:  # pragma: no cover
        return False
    if not isinstance(rust, RustTokenizer):
        return False
    special = {t.content for t in decoder().values() if t.special and not t.normalized}
    return all(t in special for t in tokens)


def load_tokenizer(source: Any) -> Tokenizer:
    """A `Tokenizer` from an object, a folder, a tokenizer.json file, or a Hub model id.

    Paths and model ids load through transformers when it is installed (so counts match
    what the hf/vLLM engines tokenize), else through `tokenizers` from tokenizer.json.
    """
    if isinstance(source, Tokenizer):
        return source
    if not isinstance(source, (str, os.PathLike)):
        return Tokenizer(source)
    path = Path(source)
    if path.is_file() and path.suffix == ".json":
        from tokenizers import Tokenizer as RustTokenizer

        return Tokenizer(RustTokenizer.from_file(str(path)), name=str(path))
    try:
        from transformers import AutoTokenizer
    except ImportError:
        if (path / "tokenizer.json").is_file():
            from tokenizers import Tokenizer as RustTokenizer

            return Tokenizer(RustTokenizer.from_file(str(path / "tokenizer.json")), name=str(path))
        raise UsageError(
            f"cannot load the tokenizer {source!s}: install transformers "
            "(pip install 'instructpt[hf]') or pass a folder with tokenizer.json"
        ) from None
    try:
        backend = AutoTokenizer.from_pretrained(str(source))
    except Exception as exc:  # noqa: BLE001 - any load failure is a user-facing error
        raise UsageError(f"cannot load the tokenizer {source!s}: {first_line(exc)}") from None
    return Tokenizer(backend, name=str(source))
