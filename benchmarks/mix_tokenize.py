"""Mix throughput against the tokenizer's own batch encoding, on this machine.

Baseline: `tokenizers.Tokenizer.encode_batch` over every wrapped text at once (Rust threads on
all cores), nothing else. Ours: `run_mix` end to end (reading JSONL, wrapping, tokenizing in
worker processes, planning, shuffling, writing Megatron shards). Same texts, same tokenizer
(Mistral-7B-v0.1's, rebuilt offline from mistral-common, else a BPE trained here).

    python benchmarks/mix_tokenize.py [--docs 40000] [--words 460]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=40_000)
    parser.add_argument("--words", type=int, default=460)
    args = parser.parse_args()
    from transformers import PreTrainedTokenizerFast

    from common import mistral_v01_tokenizer, synthetic_documents, write_jsonl
    from instructpt.mixing.mix import run_mix
    from instructpt.mixing.recipes import MixConfig, SourceSpec
    from instructpt.testing import train_tokenizer

    docs = synthetic_documents(args.docs, args.words, seed=5)
    rust = mistral_v01_tokenizer() or train_tokenizer([d["text"] for d in docs[:500]], 8000)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tok"
        PreTrainedTokenizerFast(tokenizer_object=rust, bos_token="<s>", eos_token="</s>").save_pretrained(
            folder
        )
        corpus = write_jsonl(Path(tmp) / "corpus.jsonl", docs)
        wrapped = ["<s>" + d["text"] + "</s>" for d in docs]
        started = time.perf_counter()
        n_tokens = sum(len(e.ids) for e in rust.encode_batch(wrapped, add_special_tokens=False))
        base_s = time.perf_counter() - started
        print(f"{args.docs} docs, {n_tokens / args.docs:.0f} tokens/doc, {os.cpu_count()} cores")
        print(f"{'run':<52}{'seconds':>9}{'tokens/s':>12}{'vs baseline':>13}")
        print(
            f"{'tokenizers encode_batch (baseline)':<52}{base_s:>9.2f}{n_tokens / base_s:>12,.0f}{1:>13.0%}"
        )
        for workers in (0, 1):
            config = MixConfig([SourceSpec("corpus", [str(corpus)])], str(Path(tmp) / f"out{workers}"),
                               str(folder), format="megatron", workers=workers)  # fmt: skip
            started = time.perf_counter()
            manifest = run_mix(config, log=lambda m: None)
            seconds = time.perf_counter() - started
            assert manifest["tokens_total"] == n_tokens
            label = f"instructpt mix, megatron, workers={workers or os.cpu_count()}" + (
                " (processes)" if workers != 1 else " (Rust threads)"
            )
            rate = n_tokens / seconds
            print(f"{label:<52}{seconds:>9.2f}{rate:>12,.0f}{rate / (n_tokens / base_s):>13.0%}")


if __name__ == "__main__":
    main()
