"""A tokenizer folder loads through `tokenizers` alone when transformers would use its
tokenizer.json unchanged (no transformers/torch import: CLI start-up), and through
AutoTokenizer otherwise; both paths give the same ids, decoding and special tokens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from instructpt.testing import save_tiny_tokenizer
from instructpt.tokenization import Tokenizer, load_tokenizer

PROBES = [
    "<s> <CON> A short  document.\tWith tabs\nand lines. </CON>\n\n<QUE> Why? <ANS> Because. </END></s>",
    "Straße, ünïcödé and 😀 emoji; 12345 digits;   spaces  ",
    "<unk><s></s> glued<s>tokens</s>",
    "",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    texts = [json.loads(line)["text"] for line in open("examples/corpus.jsonl")][:20]
    return save_tiny_tokenizer(tmp_path_factory.mktemp("tok"), texts)


def _edited(folder: Path, tmp_path: Path, **config) -> Path:
    copy = tmp_path / "edited"
    copy.mkdir()
    (copy / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
    base = json.loads((folder / "tokenizer_config.json").read_text())
    (copy / "tokenizer_config.json").write_text(json.dumps({**base, **config}))
    return copy


def _is_plain(tokenizer: Tokenizer) -> bool:
    from tokenizers import Tokenizer as RustTokenizer

    return isinstance(tokenizer.backend, RustTokenizer)


def test_plain_folder_matches_autotokenizer(folder):
    transformers = pytest.importorskip("transformers")
    plain = load_tokenizer(folder)
    assert _is_plain(plain)
    auto = Tokenizer(transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True))
    ids = plain.encode_batch(PROBES)
    assert ids == auto.encode_batch(PROBES) and sum(map(len, ids)) > 50
    assert [plain.decode(x) for x in ids] == [auto.decode(x) for x in ids]
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        assert plain.special_token(key) == auto.special_token(key)
    assert plain.splits_at_bos_eos and auto.splits_at_bos_eos
    assert [plain.token_id(t) for t in ("<s>", "</s>")] == [auto.token_id(t) for t in ("<s>", "</s>")]


def test_plain_folder_does_not_import_transformers(folder):
    code = (
        "import sys; from instructpt.tokenization import load_tokenizer; "
        f"t = load_tokenizer({str(folder)!r}); "
        "print(t.eos_token, 'transformers' in sys.modules, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["</s>", "False", "False"]


@pytest.mark.parametrize(
    "config",
    [
        {"tokenizer_class": "LlamaTokenizer"},  # a class with its own normalizer handling
        {"tokenizer_class": None},
        {"auto_map": {"AutoTokenizer": ["x.Tok", None]}},  # remote code
        {"clean_up_tokenization_spaces": True},  # decodes differently
        {"add_prefix_space": True},
        {"eos_token": "<|end|>"},  # not a token of tokenizer.json: transformers adds it
        {"additional_special_tokens": ["<extra>"]},
        {"mask_token": "<mask>"},
        {"eos_token": {"content": ["</s>"]}},  # malformed: never a traceback, transformers decides
        {"added_tokens_decoder": {"1": {"content": "</s>", "special": True}}},  # another id
    ],
)
def test_other_folders_go_through_transformers(folder, tmp_path, config):
    from instructpt.tokenization import _plain_folder_tokenizer

    assert _plain_folder_tokenizer(_edited(folder, tmp_path, **config), "x") is None


def test_matching_added_tokens_decoder_keeps_the_plain_path(folder, tmp_path):
    from instructpt.tokenization import _plain_folder_tokenizer

    decoder = {"1": {"content": "<s>", "special": True}, "2": {"content": "</s>", "special": True}}
    assert _plain_folder_tokenizer(_edited(folder, tmp_path, added_tokens_decoder=decoder), "x") is not None
