"""Exact token counting with the synthesizer's own tokenizer.

Everything that budgets a prompt goes through `Tokenizer.encode_batch`, which never
adds special tokens: the prompt text already starts with the literal BOS `<s>`
(docs/method.md §2), and a prompt with two BOS tokens is a bug. The wrapper accepts a
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

    def __init__(self, backend: Any, name: str = "", special: dict[str, str] | None = None) -> None:
        self.backend = backend
        self.name = name or type(backend).__name__
        # bos/eos/unk/pad token text from the folder's tokenizer_config.json when the backend
        # (a bare `tokenizers.Tokenizer`) does not know them itself
        self.special = dict(special or {})
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

    @property
    def bos_token(self) -> str | None:
        return self.special_token("bos_token")

    @property
    def eos_token(self) -> str | None:
        return self.special_token("eos_token")

    def special_token(self, key: str) -> str | None:
        """The text of the special token `key` ("bos_token", "eos_token"...), or None."""
        value = getattr(self.backend, key, None)
        return value if isinstance(value, str) and value else self.special.get(key)

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


SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token")


def special_tokens_of(folder: Path) -> dict[str, str]:
    """The special tokens a tokenizer folder names, as transformers reads them: from
    special_tokens_map.json, then tokenizer_config.json (which wins); a token is a string or
    an AddedToken dict `{"content": "</s>", ...}`."""
    from .io.files import read_json_or_none

    found: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        config = read_json_or_none(folder / name)
        if not isinstance(config, dict):
            continue
        for key in SPECIAL_KEYS:
            value = config.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str) and value:
                found[key] = value
    return found


def _from_tokenizer_json(file: Path, name: str) -> Tokenizer:
    from tokenizers import Tokenizer as RustTokenizer

    try:
        backend = RustTokenizer.from_file(str(file))
    except Exception as exc:  # noqa: BLE001 - a broken tokenizer.json is the user's to fix
        raise UsageError(f"cannot load the tokenizer {name}: {file}: {first_line(exc)}") from None
    return Tokenizer(backend, name=name, special=special_tokens_of(file.parent))


# tokenizer_config.json classes that transformers builds from tokenizer.json as it is (no
# normalizer or pre-tokenizer of their own, unlike e.g. LlamaTokenizer's `legacy` handling).
_PLAIN_CLASSES = frozenset({"PreTrainedTokenizerFast", "TokenizersBackend"})
# Settings with which transformers would encode or decode differently from tokenizer.json.
_CHANGING_KEYS = ("auto_map", "add_prefix_space", "legacy", "from_slow")
# Special tokens a config may name; transformers adds any that tokenizer.json lacks.
_NAMED_SPECIAL_KEYS = (*SPECIAL_KEYS, "mask_token", "sep_token", "cls_token")


def _plain_folder_tokenizer(folder: Path, name: str) -> Tokenizer | None:
    """The folder's tokenizer.json through `tokenizers` alone (no transformers import, which
    imports torch: ~3 s per process), when AutoTokenizer would give the same ids, decoding and
    special tokens: a generic fast class (`_PLAIN_CLASSES`), no remote code, no setting that
    changes encoding or decoding, and every special or added token the config names already
    a special token of tokenizer.json at the same id. Else None (load through transformers)."""
    from .io.files import read_json_or_none

    file = folder / "tokenizer.json"
    config = read_json_or_none(folder / "tokenizer_config.json")
    if not file.is_file() or not isinstance(config, dict):
        return None
    if config.get("tokenizer_class") not in _PLAIN_CLASSES or config.get("clean_up_tokenization_spaces"):
        return None
    if any(key in config for key in _CHANGING_KEYS):
        return None
    tokenizer = _from_tokenizer_json(file, name)
    added = {t.content: i for i, t in tokenizer.backend.get_added_tokens_decoder().items() if t.special}
    named: dict[str, int | None] = {}  # special token text -> the id the config gives it, if any
    for key in ("special_tokens_map.json", "tokenizer_config.json"):
        extra = read_json_or_none(folder / key)
        if not isinstance(extra, dict):
            continue
        additional = extra.get("additional_special_tokens") or ()
        tokens = [extra.get(k) for k in _NAMED_SPECIAL_KEYS] + list(additional)
        for token in tokens:
            text = token.get("content") if isinstance(token, dict) else token
            if token is not None and not isinstance(text, str):
                return None
            if text:
                named.setdefault(text, None)
    decoder = config.get("added_tokens_decoder") or {}
    if not isinstance(decoder, dict):
        return None
    for index, token in decoder.items():
        text = token.get("content") if isinstance(token, dict) else None
        if not isinstance(text, str) or not str(index).isdigit():
            return None
        if token.get("special", False):
            named[text] = int(index)
        elif tokenizer.backend.token_to_id(text) != int(index):
            return None
    if any(text not in added or index not in (None, added[text]) for text, index in named.items()):
        return None
    return tokenizer


def load_tokenizer(source: Any, hint: str | None = None) -> Tokenizer:
    """A `Tokenizer` from an object, a folder, a tokenizer.json file, or a Hub model id.

    Paths and model ids load through transformers when it is installed (so counts match
    what the hf/vLLM engines tokenize), else through `tokenizers` from tokenizer.json (the
    folder's tokenizer_config.json naming the special tokens). A local folder whose
    tokenizer.json transformers would use unchanged loads through `tokenizers` either way
    (`_plain_folder_tokenizer`: the same ids, without importing transformers and torch). A
    missing folder, or a Hub id that cannot be reached nor found in the cache, is a
    UsageError at once (`hub.locate`; `hint` says what to pass instead).
    """
    from .hub import DEFAULT_HINT, cached_file, locate

    if isinstance(source, Tokenizer):
        return source
    if not isinstance(source, (str, os.PathLike)):
        return Tokenizer(source)
    try:
        where = locate(source, hint or DEFAULT_HINT)
    except UsageError as exc:
        if str(exc).startswith("folder not found"):
            raise UsageError(f"cannot load the tokenizer {source!s}: {exc}") from None
        raise
    path = where.folder
    if path is not None and path.is_file():
        if path.suffix != ".json":
            raise UsageError(f"cannot load the tokenizer {source!s}: pass a folder or a tokenizer.json file")
        return _from_tokenizer_json(path, str(path))
    if path is not None and (plain := _plain_folder_tokenizer(path, str(source))) is not None:
        return plain
    try:
        from transformers import AutoTokenizer
    except ImportError:
        file = path / "tokenizer.json" if path is not None else None
        if file is None and (cached := cached_file(where.name, "tokenizer.json")):
            file = Path(cached)
        if file is not None and file.is_file():
            return _from_tokenizer_json(file, str(source))
        raise UsageError(
            f"cannot load the tokenizer {source!s}: install transformers "
            "(pip install 'instructpt[hf]') or pass a folder with tokenizer.json"
        ) from None
    try:
        backend = AutoTokenizer.from_pretrained(where.name, local_files_only=where.local_only)
    except Exception as exc:  # noqa: BLE001 - any load failure is a user-facing error
        raise UsageError(f"cannot load the tokenizer {source!s}: {first_line(exc)}") from None
    return Tokenizer(backend, name=str(source))
