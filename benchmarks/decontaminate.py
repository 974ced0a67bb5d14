"""Decontamination speed and memory: documents/s on one core, bytes per million eval n-grams.

Input: a finished synthesize folder of prose documents of ~600 tokens (benchmarks/inputs.py),
each with the synthesizer's 3-6 pairs of every kind (written once, untimed, by a zero-cost
engine), and an index of ~1M 13-grams from synthetic benchmark questions of 20-40 words (plus
short ones, indexed whole). Timed: `run_decontaminate` end to end with the index built: reading
and hash-checking every input shard, normalising and hashing every document and pair, looking
them up, the pair filters, encoding Parquet, atomic writes, markers and summary. One process,
numpy single-threaded (OMP/OPENBLAS threads = 1): one core.

Memory per million eval n-grams: the index's arrays (uint64 hash + uint16 benchmark id), beside
a Python set of the same hashes (tracemalloc), and the lookup rate of each.

    python benchmarks/decontaminate.py [--docs 4000] [--ngrams 1000000] [--repeat 3] [--dedupe]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import argparse  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))


def eval_texts(ngrams: int, seed: int = 1) -> list[tuple[str, str]]:
    """(benchmark, text) questions of 20-40 words until ~`ngrams` 13-grams, 5% short ones."""
    from inputs import corpus_sentences

    rng = random.Random(seed)
    vocab = sorted({w for s in corpus_sentences() for w in s.split()}) + [f"term{i}" for i in range(5000)]
    texts, total = [], 0
    while total < ngrams:
        k = rng.randint(8, 12) if rng.random() < 0.05 else rng.randint(20, 40)
        texts.append((f"bench{len(texts) % 8}", " ".join(rng.choices(vocab, k=k)) + "?"))
        total += max(k - 12, 1)
    return texts


def synthesized(folder: Path, docs: int) -> Path:
    """A synthesize folder of `docs` prose documents of ~600 tokens with 3-6 pairs each."""
    from inputs import bench_tokenizer, prose_documents, varied_generate
    from instructpt.engines.function import from_function
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis
    from instructpt.tokenization import Tokenizer

    tokenizer = Tokenizer(*bench_tokenizer())
    corpus = folder / "corpus.jsonl"
    import json

    corpus.write_text("".join(json.dumps(d) + "\n" for d in prose_documents(docs, 600, tokenizer)))
    config = SynthesisConfig(
        inputs=[str(corpus)], output=str(folder / "synth"), model="m", engine="f", shard_size=1000
    )
    run_synthesis(
        config, lambda: from_function(varied_generate, tokenizer, 8192), progress=False, log=lambda m: None
    )
    return folder / "synth"


def memory_figures(texts: list[tuple[str, str]]) -> dict[str, float]:
    import numpy as np

    from instructpt.quality.ngrams import NgramIndex

    started = time.perf_counter()
    index = NgramIndex.build(texts)
    build_s = time.perf_counter() - started
    hashes = np.concatenate([h for h, _ in index.tables.values()])
    tracemalloc.start()
    as_set = set(hashes.tolist())
    set_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rng = np.random.default_rng(0)
    queries = np.concatenate([rng.choice(hashes, 10_000), rng.integers(0, 2**63, 90_000, dtype=np.uint64)])
    table = index.tables[13][0]
    t0 = time.perf_counter()
    pos = np.searchsorted(table, queries)
    pos[pos == len(table)] = 0
    _ = table[pos] == queries
    t1 = time.perf_counter()
    _ = [q in as_set for q in queries.tolist()]
    t2 = time.perf_counter()
    maybe = queries[index._maybe(queries)]  # what NgramIndex.find does: the bit filter first
    pos = np.searchsorted(table, maybe)
    pos[pos == len(table)] = 0
    _ = table[pos] == maybe
    t3 = time.perf_counter()
    million = len(index) / 1e6
    arrays = sum(h.nbytes + b.nbytes for h, b in index.tables.values())
    return {
        "ngrams": len(index),
        "build_s": build_s,
        "index_mb_per_million": index.nbytes / 1e6 / million,
        "arrays_mb_per_million": arrays / 1e6 / million,
        "set_mb_per_million": set_bytes / 1e6 / million,
        "numpy_lookups_per_s": len(queries) / (t1 - t0),
        "set_lookups_per_s": len(queries) / (t2 - t1),
        "filtered_lookups_per_s": len(queries) / (t3 - t2),
        "filter_pass": len(maybe) / len(queries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=4000)
    parser.add_argument("--ngrams", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dedupe", action="store_true", help="also run the corpus-wide duplicate filter")
    args = parser.parse_args()

    from instructpt.quality import DecontaminateOptions, FilterSettings, NgramIndex, run_decontaminate

    texts = eval_texts(args.ngrams)
    mem = memory_figures(texts)
    print(
        f"index: {mem['ngrams']:,} n-grams built in {mem['build_s']:.1f} s; MB per million n-grams: "
        f"{mem['index_mb_per_million']:.1f} (sorted arrays {mem['arrays_mb_per_million']:.1f} + bit filter), "
        f"Python set {mem['set_mb_per_million']:.1f}; lookups/s (10% present): sorted arrays "
        f"{mem['numpy_lookups_per_s']:,.0f}, bit filter + arrays {mem['filtered_lookups_per_s']:,.0f} "
        f"({mem['filter_pass']:.1%} pass the filter), Python set {mem['set_lookups_per_s']:,.0f}"
    )
    index = NgramIndex.build(texts)
    options = DecontaminateOptions(filters=FilterSettings(dedupe=args.dedupe))
    with tempfile.TemporaryDirectory() as tmp:
        synth = synthesized(Path(tmp), args.docs)
        rates: list[float] = []
        cpu_rates: list[float] = []
        for k in range(args.repeat + 1):  # the first run warms caches and is not counted
            started, cpu = time.perf_counter(), time.process_time()
            summary = run_decontaminate(
                synth, Path(tmp) / f"out{k}", options=options, index=index, progress=False, log=lambda m: None
            )
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            if k:
                rates.append(summary["documents_in"] / seconds)
                cpu_rates.append(summary["documents_in"] / cpu)
        pairs = summary["pairs_in"] / summary["documents_in"]
    print(
        f"decontaminate: {summary['documents_in']:,} documents ({pairs:.1f} pairs each), one core: "
        f"median {statistics.median(rates):,.0f} documents/s (min {min(rates):,.0f}, max {max(rates):,.0f}; "
        f"per CPU second {statistics.median(cpu_rates):,.0f}); "
        f"pairs dropped: {summary['pairs_dropped']}"
    )


if __name__ == "__main__":
    main()
