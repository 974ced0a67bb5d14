"""Rules engine speed: documents/s on one core, mining alone and through `synthesize`.

Documents: the bundled example corpus (56 documents, 80 to 5,000 words), repeated. The
pipeline run includes exact tokenization for the length budgets (Mistral-7B-v0.1's
tokenizer when mistral-common is installed), 2 rounds, Parquet writing.

    python benchmarks/rules_engine.py [--repeat 40]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
CORPUS = Path(__file__).parent.parent / "examples" / "corpus.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    os.environ["RAYON_NUM_THREADS"] = "1"
    from common import mistral_v01_tokenizer, write_jsonl
    from instructpt.engines.rules import RulesEngine, mine_pairs
    from instructpt.synthesis.rounds import RoundSettings
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis
    from instructpt.testing import train_tokenizer
    from instructpt.tokenization import Tokenizer

    base = [json.loads(line) for line in CORPUS.open()]
    docs = [{"id": f"{d['id']}-{k}", "text": d["text"]} for k in range(args.repeat) for d in base]
    started = time.perf_counter()
    pairs = sum(len(mine_pairs(d["text"])) for d in docs)
    mine_s = time.perf_counter() - started
    rust = mistral_v01_tokenizer() or train_tokenizer([d["text"] for d in base], 4000)
    tokenizer = Tokenizer(rust, "mistral-7b-v0.1" if mistral_v01_tokenizer() else "bpe-trained-here")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_jsonl(Path(tmp) / "corpus.jsonl", docs)
        config = SynthesisConfig(inputs=[str(corpus)], output=str(Path(tmp) / "out"), model="rules",
                                 engine="rules", shard_size=1000, rounds=RoundSettings(rounds=2))  # fmt: skip
        started = time.perf_counter()
        summary = run_synthesis(config, lambda: RulesEngine(tokenizer), progress=False, log=lambda m: None)
        pipe_s = time.perf_counter() - started
    print(
        f"{len(docs)} documents, {pairs / len(docs):.2f} pairs/document, tokenizer {tokenizer.name}, one core"
    )
    print(f"mine_pairs alone:                 {len(docs) / mine_s:>9,.0f} documents/s")
    print(f"instructpt synthesize --engine rules: {summary['documents'] / pipe_s:>9,.0f} documents/s "
          f"({summary['entries']} entries after splitting long documents)")  # fmt: skip


if __name__ == "__main__":
    main()
