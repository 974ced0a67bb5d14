"""Non-model overhead of `instructpt synthesize`: everything but the model, in documents/s.

Input: prose documents of ~600 tokens (benchmarks/inputs.py). The engine returns text, as
real engines do: a `from_function` engine whose function answers each prompt at once with
that document's own generation (3-6 pairs of every kind, with the usual failure shapes), and
whose token counts the engine computes with the tokenizer. What is timed is our own work:
reading JSONL, exact tokenization of every prompt (round-0 reading material and round-1
prompts with context), counting the generated tokens, budget checks, parsing, Parquet
encoding, atomic writes and the manifest. One tokenizer thread (`--threads`) = one core.

Each code version (this tree, and any `--against OTHER/src`) runs in its own worker process;
the versions alternate, after a warm-up, `--repeat` times: median and min-max. Then end to end
through the CLI, in a fresh process: `instructpt synthesize --engine rules` (the built-in
engine that needs no model; its mining is included) once per code version (`PYTHONPATH=<its
src>`: start-up and loading the tokenizer folder included), beside the same run in process.

    python benchmarks/synthesize_overhead.py [--docs 4000] [--repeat 3] [--threads 1]
                                             [--tokenizer tokenizer.json] [--against /tmp/old/src]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))


def tokenizer_for(path: str | None):
    from inputs import bench_tokenizer
    from instructpt.tokenization import Tokenizer, load_tokenizer

    if path:
        return load_tokenizer(path)
    return Tokenizer(*bench_tokenizer())


def worker(engine: str, corpus: str, tokenizer_path: str) -> None:
    """One code version: run the synthesize stage over `corpus` per request (measure.Worker)."""
    import instructpt
    from inputs import varied_generation
    from instructpt.engines.function import from_function
    from instructpt.engines.rules import RulesEngine
    from instructpt.synthesis.rounds import RoundSettings
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis
    from measure import serve

    tokenizer = tokenizer_for(tokenizer_path)
    tokenize = [0.0]
    encode = tokenizer._encode_batch

    def timed_encode(texts):  # time spent inside the tokenizer library
        t0 = time.perf_counter()
        try:
            return encode(texts)
        finally:
            tokenize[0] += time.perf_counter() - t0

    tokenizer._encode_batch = timed_encode
    scratch = tempfile.TemporaryDirectory()
    runs = [0]

    # The model's answers, made before timing: what is timed is ours, not the stand-in model.
    answers = {d["text"]: varied_generation(d["text"]) for d in map(json.loads, open(corpus))}

    def generate(prompts: list[str]) -> list[str]:  # the last document of each prompt
        docs = (p[p.rfind("<CON> ") + 6 : p.rfind(" </CON>")] for p in prompts)
        return [answers.get(d) or varied_generation(d) for d in docs]

    def make_engine():
        if engine == "rules":
            return RulesEngine(tokenizer)
        return from_function(generate, tokenizer, max_model_len=4096)

    def run() -> dict:
        runs[0] += 1
        tokenize[0] = 0.0
        config = SynthesisConfig(inputs=[corpus], output=str(Path(scratch.name) / f"out{runs[0]}"),
                                 model="none", engine=engine, shard_size=1000,
                                 rounds=RoundSettings(rounds=2))  # fmt: skip
        summary = run_synthesis(config, make_engine, progress=False, log=lambda m: None)
        return {"tokenize": tokenize[0], "summary": summary}

    serve(run, ready=instructpt.__file__)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=4000)
    parser.add_argument("--tokens", type=int, default=600, help="target tokens per document")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="tokenizer threads (1 = one core)")
    parser.add_argument("--tokenizer", default="",
                        help="tokenizer.json or folder (Mistral-7B-v0.1's); default: inputs.py")  # fmt: skip
    parser.add_argument("--against", action="append", default=[], metavar="SRC",
                        help="another tree's src/ folder to time side by side (repeatable)")  # fmt: skip
    parser.add_argument("--no-cli", action="store_true", help="skip the end-to-end CLI figures")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # before tokenizers starts, here and in workers
    if args.worker:
        return worker(*args.worker)
    from common import write_jsonl
    from inputs import prose_documents, save_tokenizer
    from measure import Worker, cli, compare, load_now, machine, table

    print(machine())
    tokenizer = tokenizer_for(args.tokenizer)
    docs = prose_documents(args.docs, args.tokens, tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = str(write_jsonl(Path(tmp) / "corpus.jsonl", docs))
        tok_path = args.tokenizer
        if not tok_path:
            tok_path = str(save_tokenizer(tokenizer.backend, Path(tmp) / "tok"))
        trees = {"this tree": SRC, **{f"--against {src}": Path(src) for src in args.against}}
        workers = {n: Worker(__file__, ["function", corpus, tok_path], src) for n, src in trees.items()}
        try:
            times = compare(workers, repeats=args.repeat)
        finally:
            for w in workers.values():
                w.close()
        s = next(iter(workers.values())).last["summary"]
        n = s["documents"]
        print(f"{n} documents, {s['tokens']['raw'] / n:.0f} raw tokens/document, "
              f"{s['pairs'] / n:.2f} pairs/document, {s['prompts_with_context']} prompts with context; "
              f"tokenizer {tokenizer.name}, {args.threads} thread(s)")  # fmt: skip
        print(f"in process, function engine returning text, {args.repeat} runs after a warm-up "
              f"(load {load_now()}):")  # fmt: skip
        base = next(iter(workers)) if len(workers) > 1 else None
        table(n, "documents", times, base=base)
        print("the same runs in CPU time:")
        table(n, "documents", {k: w.cpu() for k, w in workers.items()}, base=base)
        for k, w in workers.items():
            shares = [r["tokenize"] / r["seconds"] for r in w.results[1:]]
            print(f"  {k}: time in the tokenizer {sorted(shares)[len(shares) // 2]:.0%} (median); raw "
                  f"tokens/s {s['tokens']['raw'] / sorted(times[k])[len(times[k]) // 2]:,.0f}")  # fmt: skip
        if args.no_cli:
            return
        rules = Worker(__file__, ["rules", corpus, tok_path], SRC)
        variants = {"rules engine, in process": rules}
        for name, src in trees.items():  # each tree's CLI: PYTHONPATH=<its src> instructpt ...
            out = str(Path(tmp) / f"cli-out-{len(variants)}")
            env = {"RAYON_NUM_THREADS": str(args.threads), "PYTHONPATH": str(src)}
            variants[f"synthesize --engine rules (CLI), {name}"] = cli(
                "synthesize", corpus, "-o", out, "--engine", "rules", "--model", tok_path,
                "--shard-size", "1000", "--overwrite", "--no-progress", env=env,
            )  # fmt: skip
        try:
            e2e = compare(variants, repeats=args.repeat)
        finally:
            rules.close()
        print(f"rules engine (mining included), in process and end to end (load {load_now()}):")
        table(n, "documents", e2e)
        print(json.dumps({"manifest_documents": rules.last["summary"]["documents"]}))


if __name__ == "__main__":
    main()
