"""Scaling from 1 to 2 workers on this machine (CPU): static sharding, one process per worker.

Each worker runs the hf engine on a random-weight Mistral-shaped model (hidden 256, 4 layers)
with one torch thread, so 2 workers use the 2 cores; the same corpus, the same settings.
Reports wall time, documents/s, the speed-up, and checks that the outputs are identical.

    python benchmarks/scaling.py [--docs 256] [--max-new-tokens 48]
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
    parser.add_argument("--docs", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    from common import synthetic_documents, write_jsonl
    from instructpt.testing import build_tiny_model

    docs = synthetic_documents(args.docs, 120, seed=7)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "model", [d["text"] for d in docs[:40]], vocab_size=3000,
                                 hidden_size=256, num_layers=4)  # fmt: skip
        corpus = write_jsonl(Path(tmp) / "corpus.jsonl", docs)

        def command(out: str, workers: int, index: int) -> list[str]:
            return [sys.executable, "-m", "instructpt", "synthesize", str(corpus), "-o", str(Path(tmp) / out),
                    "--engine", "hf", "--model", str(model), "--shard-size", "8", "--max-new-tokens",
                    str(args.max_new_tokens), "--max-model-len", "1024", "--no-progress",
                    "--num-workers", str(workers), "--worker-index", str(index)]  # fmt: skip

        timings = {}
        for workers in (1, 2):
            started = time.perf_counter()
            procs = [subprocess.Popen(command(f"w{workers}", workers, i), env=env, stderr=subprocess.DEVNULL)
                     for i in range(workers)]  # fmt: skip
            assert all(p.wait() == 0 for p in procs)
            timings[workers] = time.perf_counter() - started
        same = all(
            (Path(tmp) / "w1" / "data" / f.name).read_bytes() == f.read_bytes()
            for f in sorted((Path(tmp) / "w2" / "data").iterdir())
        )
    print(
        f"{args.docs} documents, shards of 8, max_new_tokens {args.max_new_tokens}, 1 torch thread per worker"
    )
    for workers, seconds in timings.items():
        print(f"{workers} worker(s): {seconds:6.2f} s  {args.docs / seconds:6.2f} documents/s")
    print(f"speed-up 1 -> 2 workers: {timings[1] / timings[2]:.2f}x; outputs identical: {same}")


if __name__ == "__main__":
    main()
