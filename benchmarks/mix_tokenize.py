"""Mix throughput against the tokenizer's own batch encoding, on this machine.

Input, as the scratch recipe sees it: raw prose documents of ~600 tokens, and instruction-
augmented texts templified from other such documents with their own 3-6 pairs of every kind
(benchmarks/inputs.py; 2-shot texts of ~1,500 tokens). Baseline: `tokenizers`' `encode_batch`
over every wrapped text at once (Rust threads on all cores), nothing else. Ours: `run_mix`
end to end in process (reading JSONL, wrapping, tokenizing, planning, shuffling, writing
Megatron `.bin/.idx`), with worker processes (default) and in process (`workers=1`), and
`instructpt mix` through the CLI in a fresh process (start-up included). Same texts, same
tokenizer. Warm-up, then `--repeat` runs in alternating order: median and min-max.

    python benchmarks/mix_tokenize.py [--docs 8000] [--tokens 600] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=8000, help="documents (half raw, half augmented)")
    parser.add_argument("--tokens", type=int, default=600, help="tokens per document")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from common import write_jsonl
    from inputs import bench_tokenizer, save_tokenizer
    from instructpt.mixing.mix import run_mix
    from instructpt.mixing.recipes import MixConfig, scratch_recipe
    from instructpt.templating.render import templify
    from measure import cli, compare, load_now, machine, table, timed
    from templify_speed import build_rows

    print(machine())
    rust, name = bench_tokenizer()
    rows = build_rows(args.docs, args.tokens)
    half = len(rows) // 2
    raw = [{"id": r["id"], "text": r["text"]} for r in rows[:half]]
    augmented = [t.to_dict() for t in templify(rows[half:], seed=0)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_tokenizer(rust, Path(tmp) / "tok")
        raw_path = str(write_jsonl(Path(tmp) / "raw.jsonl", raw))
        aug_path = str(write_jsonl(Path(tmp) / "augmented.jsonl", augmented))
        wrapped = ["<s>" + d["text"] + "</s>" for d in raw + augmented]
        n_tokens = 0

        def baseline() -> None:
            nonlocal n_tokens
            n_tokens = sum(len(e.ids) for e in rust.encode_batch(wrapped, add_special_tokens=False))

        runs = {"n": 0}

        def ours(workers: int):
            def run() -> None:
                runs["n"] += 1
                config = MixConfig(scratch_recipe([aug_path], [raw_path]), str(Path(tmp) / f"out{runs['n']}"),
                                   str(folder), format="megatron", workers=workers)  # fmt: skip
                manifest = run_mix(config, log=lambda m: None)
                assert manifest["tokens_total"] == n_tokens, (manifest["tokens_total"], n_tokens)

            return timed(run)

        command = cli("mix", "--recipe", "scratch", "--augmented", aug_path, "--raw", raw_path,
                      "--tokenizer", str(folder), "--format", "megatron", "-o", str(Path(tmp) / "cli"),
                      "--overwrite")  # fmt: skip
        variants = {
            "tokenizers encode_batch (baseline)": timed(baseline),
            f"run_mix, worker processes ({os.cpu_count()})": ours(0),
            "run_mix, in process (Rust threads)": ours(1),
            "instructpt mix (CLI, fresh process)": command,
        }
        times = compare(variants, repeats=args.repeat)
    lengths = [len(d["text"]) for d in augmented]
    print(f"{len(raw)} raw documents + {len(augmented)} augmented texts ({sum(lengths) / len(lengths):,.0f} "
          f"chars each), {n_tokens:,} tokens, tokenizer {name}; load at the end {load_now()}")  # fmt: skip

    table(n_tokens, "tokens", times, base="tokenizers encode_batch (baseline)")
    print(json.dumps({"tokens": n_tokens}))


if __name__ == "__main__":
    main()
