"""Rules engine speed: documents/s on one core, mining alone and through `synthesize`.

Documents: the bundled example corpus (56 real documents, 80 to 5,000 words), repeated. The
pipeline run includes exact tokenization for the length budgets (Mistral-7B-v0.1's
tokenizer when mistral-common is installed, else a BPE trained on the corpus), 2 rounds,
Parquet writing; in process, and end to end through the CLI (a fresh process). One core
(`RAYON_NUM_THREADS=1`). Warm-up, then `--runs` runs in alternating order: median, min-max.

    python benchmarks/rules_engine.py [--repeat 40] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
CORPUS = Path(__file__).resolve().parent.parent / "examples" / "corpus.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=40, help="copies of the example corpus")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ["RAYON_NUM_THREADS"] = "1"
    from common import write_jsonl
    from inputs import bench_tokenizer, save_tokenizer
    from instructpt.engines.rules import RulesEngine, mine_pairs
    from instructpt.synthesis.rounds import RoundSettings
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis
    from instructpt.tokenization import Tokenizer
    from measure import cli, compare, load_now, machine, table, timed

    print(machine())
    base = [json.loads(line) for line in CORPUS.open()]
    docs = [{"id": f"{d['id']}-{k}", "text": d["text"]} for k in range(args.repeat) for d in base]
    rust, name = bench_tokenizer()
    tokenizer = Tokenizer(rust, name)
    pairs, entries, runs = [0], [0], [0]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_jsonl(Path(tmp) / "corpus.jsonl", docs)
        folder = save_tokenizer(rust, Path(tmp) / "tok")

        def mine() -> None:
            pairs[0] = sum(len(mine_pairs(d["text"])) for d in docs)

        def synthesize() -> None:
            runs[0] += 1
            out = str(Path(tmp) / f"out{runs[0]}")
            config = SynthesisConfig(inputs=[str(corpus)], output=out, model="rules", engine="rules",
                                     shard_size=1000, rounds=RoundSettings(rounds=2))  # fmt: skip
            engine = RulesEngine(tokenizer)
            summary = run_synthesis(config, lambda: engine, progress=False, log=lambda m: None)
            entries[0] = summary["entries"]

        command = cli("synthesize", str(corpus), "-o", str(Path(tmp) / "cli"), "--engine", "rules",
                      "--model", str(folder), "--shard-size", "1000", "--overwrite", "--no-progress",
                      env={"RAYON_NUM_THREADS": "1"})  # fmt: skip
        variants = {
            "mine_pairs (the rules engine itself)": timed(mine),
            "synthesize --engine rules, in process": timed(synthesize),
            "instructpt synthesize --engine rules (CLI)": command,
        }
        times = compare(variants, repeats=args.runs)
    print(f"{len(docs)} documents, {pairs[0] / len(docs):.2f} pairs/document, {entries[0]} entries after "
          f"splitting long documents, tokenizer {name}, one core; load at the end {load_now()}")  # fmt: skip
    table(len(docs), "documents", times)


if __name__ == "__main__":
    main()
