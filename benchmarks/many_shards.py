"""Runs of many small shards: the per-shard bookkeeping must not grow with the shards done.

The bundled corpus, copied `--copies` times under new ids, goes through `instructpt synthesize
--engine rules` (no model: a tokenizer folder) and `instructpt templify` at `--shard-size`
documents per shard, in a fresh process per command, for this tree and each `--against` tree
(`git archive <commit> src | tar -x -C /tmp/old`), alternating, `--repeat` times. Reported:
wall-clock and CPU seconds per command (median, min-max); the outputs of every tree must be
byte-identical (data shards and summary).

    python benchmarks/many_shards.py --tokenizer TOK [--copies 36] [--shard-size 2] [--against /tmp/old/src]

(TOK: `python examples/make_tiny_model.py TOK --tokenizer-only`.)
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def corpus(path: Path, copies: int) -> int:
    rows = [json.loads(line) for line in (ROOT / "examples/corpus.jsonl").read_text().splitlines() if line]
    with open(path, "w") as out:
        for c in range(copies):
            for i, row in enumerate(rows):
                out.write(json.dumps({**row, "id": f"{c}-{i}-{row.get('id', '')}"}) + "\n")
    return copies * len(rows)


def timed(src: str, args: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": src}
    subprocess.run([sys.executable, "-m", "instructpt", *args, "--no-progress"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - started, cpu


def same(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in (a / "data").iterdir())
    return (
        names == sorted(p.name for p in (b / "data").iterdir())
        and all(filecmp.cmp(a / "data" / n, b / "data" / n, shallow=False) for n in names)
        and filecmp.cmp(a / "summary.json", b / "summary.json", shallow=False)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--copies", type=int, default=36)
    ap.add_argument("--shard-size", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--against", action="append", default=[])
    args = ap.parse_args()
    trees = {"this tree": str(ROOT / "src"), **{f"--against {t}": t for t in args.against}}
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        docs = corpus(work / "corpus.jsonl", args.copies)
        outputs: dict[str, Path] = {}
        for r in range(args.repeat):
            for n, (name, src) in enumerate(trees.items()):
                syn, tpl = work / f"s{n}-{r}", work / f"t{n}-{r}"
                times.setdefault((name, "synthesize"), []).append(timed(src, [
                    "synthesize", "--engine", "rules", "--model", args.tokenizer, "--shard-size",
                    str(args.shard_size), str(work / "corpus.jsonl"), "-o", str(syn)]))  # fmt: skip
                templify = ["templify", str(syn), "-o", str(tpl)]
                times.setdefault((name, "templify"), []).append(timed(src, templify))
                outputs[name] = tpl
        shards = len(list((work / "s0-0/data").iterdir()))
        identical = all(same(outputs["this tree"], o) for o in outputs.values())
    print(f"{docs:,} documents, {shards:,} shards of {args.shard_size}; outputs identical: {identical}")
    print("| code | command | wall s | CPU s |\n|---|---|---:|---:|")
    for (name, command), runs in times.items():
        wall, cpu = [w for w, _ in runs], [c for _, c in runs]
        print(f"| {name} | {command} | {statistics.median(wall):.1f} ({min(wall):.1f}-{max(wall):.1f}) "
              f"| {statistics.median(cpu):.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
