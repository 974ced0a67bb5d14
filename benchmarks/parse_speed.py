"""Parsing generations into pairs: generations/s on one core, side by side with the reference.

Input: the synthesizer generations of prose documents of ~600 tokens (benchmarks/inputs.py:
3-6 pairs of every kind, with unfinished, repeated, malformed and abandoned pairs at their
usual small rates). Ours is `instructpt.synthesis.format.parse_generation` (every dropped
fragment counted by reason); the reference is LMOps' `parse_comprehension(text,
deduplicate=True)` (instruction_pretrain/utils/read_compre.py; it counts nothing), loaded
from a file you give with `--reference` (only its two functions `parse_comprehension` and
`deduplicate_questions` are taken from the file, so its other imports need not resolve).
Each variant runs in its own process (both importing instructpt, so the interpreter holds the
same modules), alternating, after a warm-up; median and min-max. Both keep their results (as
the pipeline keeps a shard's entries), so the cyclic garbage collector's cost of tracking the
results is part of the figure; `--gc-off` shows it. Only parsing is timed: the pairs and drops
are counted, and the results let go, after the timer stops.

    python benchmarks/parse_speed.py [--docs 20000] [--repeat 7] [--reference .../read_compre.py]
                                     [--against OTHER_TREE/src] [--gc-off]
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))
REFERENCE_FUNCTIONS = ("parse_comprehension", "deduplicate_questions")


def load_reference(path: str):
    """`parse_comprehension` from the reference file, without running the rest of it."""
    tree = ast.parse(Path(path).read_text(), filename=path)
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in REFERENCE_FUNCTIONS]
    if len(keep) != len(REFERENCE_FUNCTIONS):
        raise SystemExit(f"{path} does not define {', '.join(REFERENCE_FUNCTIONS)}")
    namespace: dict = {}
    exec(compile(ast.Module(keep, type_ignores=[]), path, "exec"), namespace)
    return namespace["parse_comprehension"]


def worker(kind: str, path: str, gc_mode: str) -> None:
    import gc

    from measure import serve

    if gc_mode == "off":  # shows what the cyclic GC's tracking of the results costs
        gc.disable()

    generations = json.loads(Path(path).read_text())
    # Both variants import instructpt (the same interpreter state: modules, tracked objects).
    import instructpt
    from instructpt.synthesis.format import parse_generation

    if kind == "ours":

        def run() -> Mapping:
            results = [parse_generation(g) for g in generations]
            return Counted(lambda: {"pairs": sum(len(r.pairs) for r in results),
                                    "dropped": sum(sum(r.dropped.values()) for r in results)})  # fmt: skip

        return serve(run, ready=instructpt.__file__)
    parse = load_reference(kind)

    def run_reference() -> Mapping:
        results = [parse(g, deduplicate=True) for g in generations]  # kept, as ours are
        return Counted(lambda: {"pairs": sum(map(len, results))})

    serve(run_reference)


class Counted(Mapping):
    """A run's counts, computed when the worker reports them: after its timer stopped, so only
    parsing is timed (counting every result's drops is the benchmark's work, not the parser's)."""

    def __init__(self, count: Callable[[], dict]) -> None:
        self._count, self._counts = count, None

    def _get(self) -> dict:
        if self._counts is None:  # then let the results go before the next run
            self._counts, self._count = self._count(), dict
        return self._counts

    def __getitem__(self, key: str):
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--tokens", type=int, default=600, help="tokens per document")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--reference", help="LMOps instruction_pretrain/utils/read_compre.py")
    parser.add_argument("--against", action="append", default=[], metavar="SRC",
                        help="another tree's src/ folder to time side by side (repeatable)")  # fmt: skip
    parser.add_argument("--gc-off", action="store_true",
                        help="disable the cyclic garbage collector in every variant")  # fmt: skip
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)
    from inputs import bench_tokenizer, prose_documents, varied_generation
    from instructpt.tokenization import Tokenizer
    from measure import Worker, compare, load_now, machine, table

    print(machine())
    rust, name = bench_tokenizer()
    docs = prose_documents(args.docs, args.tokens, Tokenizer(rust, name))
    generations = [varied_generation(d["text"]) for d in docs]
    chars = sum(map(len, generations)) / len(generations)
    print(
        f"{len(generations)} generations of prose documents of ~{args.tokens} tokens, {chars:.0f} chars each"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generations.json"
        path.write_text(json.dumps(generations))
        gc_mode = "off" if args.gc_off else "on"
        workers = {"instructpt parse_generation": Worker(__file__, ["ours", str(path), gc_mode], SRC)}
        for src in args.against:
            workers[f"--against {src}"] = Worker(__file__, ["ours", str(path), gc_mode], Path(src))
        if args.reference:
            workers["reference parse_comprehension"] = Worker(__file__, [args.reference, str(path), gc_mode])
        try:
            times = compare(workers, repeats=args.repeat)
        finally:
            for w in workers.values():
                w.close()
    base = next(reversed(workers)) if len(workers) > 1 else None
    gc_note = "garbage collector off" if args.gc_off else "garbage collector on"
    print(f"one core, {gc_note}, results kept, {args.repeat} runs after a warm-up (load {load_now()}):")
    table(len(generations), "generations", times, base=base)
    print("the same runs in CPU time:")
    table(len(generations), "generations", {n: w.cpu() for n, w in workers.items()}, base=base)
    for n, w in workers.items():
        dropped = f", {w.last['dropped']} fragments dropped (counted)" if "dropped" in w.last else ""
        print(f"{n}: {w.last['pairs']} pairs{dropped}")


if __name__ == "__main__":
    main()
