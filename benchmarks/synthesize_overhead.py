"""Non-model overhead of `instructpt synthesize`: everything but the model, in documents/s.

A zero-cost engine answers every prompt instantly with a realistic five-pair generation
(its token count known, as real engines report it), so what is timed is our own work:
reading JSONL, exact tokenization of every prompt (round-0 reading material and round-1
prompts with context), budget checks, parsing, Parquet encoding, atomic writes and the
manifest. The figure must stay far above what a GPU consumes (≈ 20 documents/s of 600
tokens per A100 in the paper).

    python benchmarks/synthesize_overhead.py [--docs 20000] [--tokens 600] [--threads 1]
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
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--tokens", type=int, default=600, help="target tokens per document")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1, help="tokenizer threads (1 = one core)")
    parser.add_argument(
        "--vocab", type=int, default=8000, help="vocabulary of the trained stand-in tokenizer"
    )
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="tokenizer.json or folder (e.g. Mistral-7B-v0.1's); default: a BPE trained here",
    )
    args = parser.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # must be set before tokenizers starts

    from common import mistral_v01_tokenizer, realistic_generation, synthetic_documents, write_jsonl
    from instructpt.engines.base import Completion, Engine
    from instructpt.synthesis.rounds import RoundSettings
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis
    from instructpt.testing import train_tokenizer
    from instructpt.tokenization import Tokenizer, load_tokenizer

    calibration = synthetic_documents(50, 400, seed=1)
    mistral = None if args.tokenizer else mistral_v01_tokenizer()
    if args.tokenizer:
        tokenizer = load_tokenizer(args.tokenizer)
    elif mistral is not None:
        tokenizer = Tokenizer(mistral, "mistral-7b-v0.1 (from mistral-common)")
    else:
        print(
            "note: mistral-common not installed; using a BPE trained here (slower per token than Mistral's)"
        )
        tokenizer = Tokenizer(train_tokenizer([d["text"] for d in calibration], args.vocab), "bench-bpe")
    counts = tokenizer.encode_batch([d["text"] for d in calibration])
    tokens_per_word = sum(map(len, counts)) / (50 * 400)
    docs = synthetic_documents(args.docs, int(args.tokens / tokens_per_word))
    generation = realistic_generation()
    n_generated = len(tokenizer.encode(generation)) + 1  # + EOS

    class ZeroCostEngine(Engine):
        name = "zero-cost"

        def generate(self, requests):
            return [Completion(generation, n_generated, "stop") for _ in requests]

    tokenize_seconds = [0.0]
    encode = tokenizer._encode_batch

    def timed_encode(texts):  # time spent inside the tokenizer library
        t0 = time.perf_counter()
        try:
            return encode(texts)
        finally:
            tokenize_seconds[0] += time.perf_counter() - t0

    tokenizer._encode_batch = timed_encode

    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_jsonl(Path(tmp) / "corpus.jsonl", docs)
        config = SynthesisConfig(
            inputs=[str(corpus)],
            output=str(Path(tmp) / "out"),
            model="none",
            engine="zero-cost",
            shard_size=args.shard_size,
            rounds=RoundSettings(rounds=args.rounds),
        )
        started = time.perf_counter()
        summary = run_synthesis(
            config, lambda: ZeroCostEngine(tokenizer, 4096), progress=False, log=lambda m: None
        )
        seconds = time.perf_counter() - started
    n = summary["documents"]
    print(f"documents            {n}")
    print(f"raw tokens/document  {summary['tokens']['raw'] / n:.0f}")
    print(
        f"prompt tokens        {summary['tokens']['prompt']}"
        f"  (with context: {summary['prompts_with_context']} prompts)"
    )
    print(f"pairs/document       {summary['pairs'] / n:.2f}")
    print(f"tokenizer            {tokenizer.name}, {args.threads} thread(s)")
    print(f"seconds              {seconds:.2f}")
    print(f"documents/s          {n / seconds:,.0f}")
    print(f"raw tokens/s         {summary['tokens']['raw'] / seconds:,.0f}")
    rest = seconds - tokenize_seconds[0]
    print(f"of which tokenizing  {tokenize_seconds[0]:.2f} s ({tokenize_seconds[0] / seconds:.0%})")
    print(f"documents/s without tokenizing  {n / rest:,.0f}")


if __name__ == "__main__":
    main()
