"""Templify speed on realistic input: documents/s on one core, code versions side by side.

Input: 2-shot chains of prose documents of ~600 tokens (benchmarks/inputs.py), each with its
own synthesizer generation of 3-6 pairs of every kind (and the usual failure shapes), parsed
into rows as a synthesize shard holds them. Round-1 entries inherit from their predecessor
when both have pairs (their ~1,400-token prompts always fit 4096 - 400).

Every code version runs in its own worker process (`PYTHONPATH=<its src>`) that loads the
rows once and times `templify` over all of them when asked: this tree, and each `--against`
tree (e.g. an archive of an older commit: `git archive d94d2d8 src | tar -x -C /tmp/old`).
The versions alternate; each gets a warm-up run, then `--repeat` timed runs; the figure is
the median with the min-max spread. Timed: classifying pair kinds, choosing modes and
patterns, rendering (not reading or writing shards). Then the same rows end to end through
the CLI, `instructpt templify SYNTH -o OUT` in a fresh process (a synthesize folder written
here first, Parquet; start-up, reading, rendering, writing, manifest included), once per code
version (`PYTHONPATH=<its src>`), in wall-clock and in CPU time.

    python benchmarks/templify_speed.py [--docs 20000] [--repeat 5] [--against /tmp/old/src]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))


def build_rows(n: int, tokens: int) -> list[dict]:
    from inputs import bench_tokenizer, prose_documents, varied_generation
    from instructpt.synthesis.format import parse_pairs
    from instructpt.tokenization import Tokenizer

    rust, name = bench_tokenizer()
    docs = prose_documents(n, tokens, Tokenizer(rust, name))
    rows, previous_has_pairs = [], False
    for i, doc in enumerate(docs):
        pairs = parse_pairs(varied_generation(doc["text"]))
        round_ = i % 2
        rows.append({
            "id": doc["id"], "text": doc["text"], "chain_id": f"c{i // 2}", "round": round_,
            "inherits": round_ == 1 and previous_has_pairs and bool(pairs),
            "pairs": [{"instruction": p.instruction, "response": p.response} for p in pairs],
        })  # fmt: skip
        previous_has_pairs = bool(pairs)
    return rows


def worker(rows_path: str) -> None:
    """The worker process of one code version (see measure.Worker)."""
    import instructpt
    from measure import serve

    try:
        from instructpt.templating.render import templify
        from instructpt.templating.stats import TemplifyStats
    except ImportError:  # the layout before issue 13
        from instructpt.templify import TemplifyStats, templify  # type: ignore[no-redef]
    rows = [json.loads(line) for line in open(rows_path)]

    def run() -> dict:
        return {"texts": sum(1 for _ in templify(rows, seed=0, stats=TemplifyStats()))}

    serve(run, ready=instructpt.__file__)


def with_cpu(run: Callable[[], float], cpu: list[float]) -> Callable[[], float]:
    """`run` (a CLI variant), also appending to `cpu` the CPU seconds its process used: a figure
    that other processes on the machine disturb less than the wall clock."""

    def timed() -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds = run()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        return seconds

    return timed


def write_synthesize_folder(rows: list[dict], folder: Path) -> None:
    """A finished synthesize folder holding `rows`, written through the synthesize stage."""
    from inputs import bench_tokenizer
    from instructpt.engines.function import from_function
    from instructpt.synthesis.format import Pair, serialize_pairs
    from instructpt.synthesis.rounds import RoundSettings
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis

    generation = {r["text"]: serialize_pairs(Pair(**p) for p in r["pairs"]) for r in rows}

    def generate(prompts: list[str]) -> list[str]:
        return [generation[p[p.rfind("<CON> ") + 6 : p.rfind(" </CON>")]] for p in prompts]

    corpus = folder.parent / "corpus.jsonl"
    with open(corpus, "w") as handle:
        for r in rows:
            handle.write(json.dumps({"id": r["id"], "text": r["text"]}) + "\n")
    config = SynthesisConfig(inputs=[str(corpus)], output=str(folder), model="none", engine="function",
                             shard_size=2000, rounds=RoundSettings(rounds=2))  # fmt: skip
    rust, _ = bench_tokenizer()
    run_synthesis(config, lambda: from_function(generate, rust), progress=False, log=lambda m: None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--tokens", type=int, default=600, help="tokens per document")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--against", action="append", default=[], metavar="SRC",
                        help="another tree's src/ folder to time side by side (repeatable)")  # fmt: skip
    parser.add_argument("--no-cli", action="store_true", help="skip the end-to-end CLI figure")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    from measure import Worker, cli, compare, load_now, machine, table

    print(machine())
    rows = build_rows(args.docs, args.tokens)
    n_pairs = sum(len(r["pairs"]) for r in rows)
    print(f"{args.docs} documents of ~{args.tokens} tokens, {n_pairs / args.docs:.2f} pairs/document")
    with tempfile.TemporaryDirectory() as tmp:
        rows_path = Path(tmp) / "rows.jsonl"
        rows_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        trees = {"this tree": SRC, **{f"--against {src}": Path(src) for src in args.against}}
        workers = {name: Worker(__file__, [str(rows_path)], src) for name, src in trees.items()}
        try:
            times = compare(workers, repeats=args.repeat)
        finally:
            for w in workers.values():
                w.close()
        print(f"in process, one core, {args.repeat} runs after a warm-up (load {load_now()}):")
        base = next(iter(workers)) if len(workers) > 1 else None
        table(args.docs, "documents", times, base=base)
        print("the same runs in CPU time (what the process itself used):")
        table(args.docs, "documents", {n: w.cpu() for n, w in workers.items()}, base=base)
        print("texts: " + ", ".join(f"{n} {w.last['texts']}" for n, w in workers.items()))
        if args.no_cli:
            return
        synth = Path(tmp) / "synth"
        write_synthesize_folder(rows, synth)
        variants, cpu = {}, {}
        for name, src in trees.items():  # each tree's CLI: PYTHONPATH=<its src> instructpt ...
            out = str(Path(tmp) / f"texts-{len(variants)}")
            label = f"instructpt templify (CLI), {name}"
            run = cli("templify", str(synth), "-o", out, "--overwrite", env={"PYTHONPATH": str(src)})
            variants[label] = with_cpu(run, cpu.setdefault(label, []))
        e2e = compare(variants, repeats=args.repeat)
        print(f"end to end, fresh process, Parquet in and out (load {load_now()}):")
        table(args.docs, "documents", e2e)
        print("the same runs in CPU time (the CLI process's user + system):")
        table(args.docs, "documents", {n: c[-args.repeat :] for n, c in cpu.items()})  # no warm-up


if __name__ == "__main__":
    main()
