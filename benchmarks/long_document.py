"""One huge document: seconds and peak memory to split (or truncate, or skip) a 50 MB record.

The record is a single JSONL line of synthetic prose (paragraphs, sentences) of `--mb` megabytes.
Each measurement runs in a fresh process so that its peak RSS (resource.getrusage) is its own:

* `fit`: `rounds.fit_documents` alone, the long-document handling of `--long-docs` (with the
  characters tokenized per character of the document, a figure the machine's load cannot change);
* `synthesize`: `instructpt synthesize --engine rules` end to end on the one-line file (reading,
  fitting, 2 rounds of the rules engine, Parquet writing), with `--max-doc-chars` off.

Tokenizer: Mistral-7B-v0.1's when mistral-common, sentencepiece and protobuf are installed
(pip install 'instructpt[bench]'), else a small BPE trained here (about 1.5 characters per token,
so three times the tokens and pieces of the real one).

    python benchmarks/long_document.py [--mb 50] [--modes split,truncate,skip] [--stages fit,synthesize]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def make_text(n_chars: int, seed: int = 0) -> str:
    from common import _WORDS

    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) for rank in range(len(_WORDS))]
    parts: list[str] = []
    size = 0
    while size < n_chars:
        sentences = []
        for _ in range(rng.randint(3, 7)):
            words = rng.choices(_WORDS, weights, k=rng.randint(8, 20))
            sentences.append(words[0].capitalize() + " " + " ".join(words[1:]) + ".")
        paragraph = " ".join(sentences) + "\n\n"
        parts.append(paragraph)
        size += len(paragraph)
    return "".join(parts)[:n_chars]


def load_tokenizer():
    from common import mistral_v01_tokenizer
    from instructpt.testing import train_tokenizer
    from instructpt.tokenization import Tokenizer

    rust = mistral_v01_tokenizer()
    if rust is not None:
        return Tokenizer(rust, "mistral-7b-v0.1")
    return Tokenizer(train_tokenizer([make_text(200_000, seed=1)], 2000), "bpe-trained-here")


def count_characters(tokenizer) -> list[int]:
    """Count the characters `tokenizer` is asked to encode (with or without offsets) from now on."""
    counted = [0]
    encode_batch, char_offsets = tokenizer._encode_batch, tokenizer.char_offsets

    def counting_encode_batch(texts):
        counted[0] += sum(map(len, texts))
        return encode_batch(texts)

    def counting_char_offsets(text):
        counted[0] += len(text)
        return char_offsets(text)

    tokenizer._encode_batch, tokenizer.char_offsets = counting_encode_batch, counting_char_offsets
    return counted


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(stage: str, mode: str, path: Path) -> dict:
    """One measurement, in this (fresh) process."""
    from instructpt.records import Document
    from instructpt.synthesis.fitting import fit_documents
    from instructpt.synthesis.rounds import BatchResult, RoundSettings, prompt_budget

    tokenizer = load_tokenizer()
    text = json.loads(path.read_text())["text"]
    base_rss = peak_rss_mb()
    settings = RoundSettings(rounds=2, max_new_tokens=400, long_docs=mode)
    started = time.perf_counter()
    if stage == "fit":
        from instructpt.engines.base import Engine

        class Budget(Engine):  # only the budget is needed
            name = "budget"

            def generate(self, requests):  # pragma: no cover - never called
                raise NotImplementedError

        budget = prompt_budget(Budget(tokenizer, 4096), settings)
        result = BatchResult(entries=[])
        tokenized = count_characters(tokenizer)
        fitted = fit_documents([Document("big", text)], tokenizer, budget, mode, result)
        ratio = round(tokenized[0] / len(text), 3)
        outcome = {"pieces": len(fitted), "rejects": len(result.rejects), "tokenized_per_char": ratio}
    else:
        from instructpt.engines.rules import RulesEngine
        from instructpt.synthesis.stage import SynthesisConfig, run_synthesis

        del text
        with tempfile.TemporaryDirectory() as tmp:
            config = SynthesisConfig(inputs=[str(path)], output=str(Path(tmp) / "out"), model="rules",
                                     engine="rules", rounds=settings, max_doc_chars=None)  # fmt: skip
            summary = run_synthesis(
                config, lambda: RulesEngine(tokenizer), progress=False, log=lambda m: None
            )
        outcome = {
            "pieces": summary["entries"],
            "rejects": summary["rejected_inputs"],
            "pairs": summary["pairs"],
        }
    seconds = time.perf_counter() - started
    return {"stage": stage, "mode": mode, "tokenizer": tokenizer.name, "seconds": round(seconds, 1),
            "peak_rss_mb": round(peak_rss_mb()), "rss_before_mb": round(base_rss), **outcome}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=float, default=50.0, help="size of the one document, in MB")
    parser.add_argument("--modes", default="split,truncate,skip")
    parser.add_argument("--stages", default="fit,synthesize")
    parser.add_argument("--child", nargs=3, metavar=("STAGE", "MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["RAYON_NUM_THREADS"] = "1"
    if args.child:
        stage, mode, path = args.child
        print(json.dumps(measure(stage, mode, Path(path))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "one-line.jsonl"
        path.write_text(json.dumps({"id": "huge", "text": make_text(int(args.mb * 1_000_000))}) + "\n")
        print(f"one JSONL line of {path.stat().st_size / 1e6:.1f} MB, one core")
        print("| stage | --long-docs | seconds | peak RSS (MB) | parts / entries |")
        print("| --- | --- | ---: | ---: | ---: |")
        for stage in args.stages.split(","):
            for mode in args.modes.split(","):
                run = subprocess.run([sys.executable, __file__, "--child", stage, mode, str(path)],
                                     capture_output=True, text=True, check=True)  # fmt: skip
                row = json.loads(run.stdout.strip().splitlines()[-1])
                per_char = row.get("tokenized_per_char")
                ratio = f", {per_char} characters tokenized per character" if per_char is not None else ""
                note = f"<!-- tokenizer {row['tokenizer']}, rejects {row['rejects']}{ratio} -->"
                cells = f"{row['seconds']} | {row['peak_rss_mb']:,} | {row['pieces']:,}"
                print(f"| {stage} | {mode} | {cells} |  {note}", flush=True)


if __name__ == "__main__":
    main()
