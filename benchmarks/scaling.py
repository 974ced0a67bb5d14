"""Scaling from 1 to 2 workers on this machine (CPU): static sharding, one process per worker.

Each worker runs the hf engine on a random-weight Mistral-shaped model (hidden 256, 4 layers)
with one torch thread, so 2 workers use the 2 cores; the same corpus, the same settings.
Documents: prose of ~600 tokens of the model's tokenizer (benchmarks/inputs.py). Wall time
includes process start-up and model loading. A warm-up of each, then `--repeat` runs in
alternating order: median and min-max; checks that the outputs are identical.

    python benchmarks/scaling.py [--docs 128] [--tokens 600] [--max-new-tokens 48] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=128)
    parser.add_argument("--tokens", type=int, default=600, help="tokens per document")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    from common import write_jsonl
    from inputs import corpus_sentences, prose_documents
    from instructpt.testing import build_tiny_model
    from instructpt.tokenization import load_tokenizer
    from measure import compare, load_now, machine, table

    print(machine())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "model", list(corpus_sentences()), vocab_size=3000,
                                 hidden_size=256, num_layers=4)  # fmt: skip
        docs = prose_documents(args.docs, args.tokens, load_tokenizer(str(model)), seed=7)
        corpus = write_jsonl(Path(tmp) / "corpus.jsonl", docs)

        def command(out: str, workers: int, index: int) -> list[str]:
            return [sys.executable, "-m", "instructpt", "synthesize", str(corpus), "-o", str(Path(tmp) / out),
                    "--engine", "hf", "--model", str(model), "--shard-size", "8", "--max-new-tokens",
                    str(args.max_new_tokens), "--max-model-len", "4096", "--no-progress",
                    "--min-parse-rate", "0",  # random weights write no pairs: the guard stays off
                    "--num-workers", str(workers), "--worker-index", str(index)]  # fmt: skip

        runs = {1: 0, 2: 0}

        def run(workers: int):
            def go() -> float:
                started = time.perf_counter()
                runs[workers] += 1
                out = f"w{workers}-{runs[workers]}"  # a fresh folder per run
                procs = [subprocess.Popen(command(out, workers, i), env=env, stderr=subprocess.DEVNULL)
                         for i in range(workers)]  # fmt: skip
                assert all(p.wait() == 0 for p in procs)
                return time.perf_counter() - started

            return go

        times = compare({"1 worker": run(1), "2 workers": run(2)}, repeats=args.repeat)
        same = all(
            (Path(tmp) / f"w1-{runs[1]}" / "data" / f.name).read_bytes() == f.read_bytes()
            for f in sorted((Path(tmp) / f"w2-{runs[2]}" / "data").iterdir())
        )
    print(f"{args.docs} documents of ~{args.tokens} tokens, shards of 8, max_new_tokens "
          f"{args.max_new_tokens}, 1 torch thread per worker; load at the end {load_now()}")  # fmt: skip
    table(args.docs, "documents", times, base="1 worker")
    print(f"outputs identical: {same}")


if __name__ == "__main__":
    main()
