"""Templify's distribution report (issue 12): what the instruction-augmented texts look like.

For a finished `instructpt synthesize` folder (or, with no folder, the bundled corpus
examples/corpus.jsonl synthesized with M=2 rounds by scripted generations of all four pair
kinds, `instructpt.testing.scripted_generate`), templify every shard under `--seeds` seeds
(a small corpus gives few texts per seed) and print: the share of each mode and layout,
inversions, bare documents, multiple choice without options, the number of distinct patterns
used per family next to the library's size, the pattern consistency within texts, pairs kept
and dropped by reason, and speed (documents per CPU second, one core).

    python benchmarks/templify_distribution.py [SYNTH_FOLDER] [--seeds 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

CORPUS = Path(__file__).parent.parent / "examples" / "corpus.jsonl"
REFERENCE = {"qa": 80, "options": 48, "cot": 210, "options_cot": 240, "opt_style": 87, "header": 16}


def synthesize_bundled(folder: Path) -> Path:
    """The bundled corpus through `run_synthesis` with scripted generations, M=2."""
    from instructpt.engines.function import from_function
    from instructpt.synthesis.rounds import RoundSettings
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis
    from instructpt.testing import scripted_generate, train_tokenizer

    texts = [json.loads(line)["text"] for line in CORPUS.open()]
    tokenizer = train_tokenizer(texts, vocab_size=1000)
    tok_file = folder / "tokenizer.json"
    tokenizer.save(str(tok_file))
    out = folder / "synthesized"
    config = SynthesisConfig(inputs=[str(CORPUS)], output=str(out), model="scripted", engine="function",
                             tokenizer=str(tok_file), rounds=RoundSettings(rounds=2))  # fmt: skip
    run_synthesis(config, lambda: from_function(scripted_generate, str(tok_file)), progress=False,
                  log=lambda msg: None)  # fmt: skip
    return out


def report(folder: Path, seeds: int) -> dict:
    from instructpt.templating.render import templify
    from instructpt.templating.stage import read_records
    from instructpt.templating.stats import TemplifyStats

    summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").is_file() else {}
    files = sorted(p for p in (folder / "data").glob("part-*") if p.suffix in (".parquet", ".jsonl"))
    shards = [read_records(path) for path in files]
    stats = TemplifyStats()
    cpu = time.process_time()
    for seed in range(seeds):
        for rows in shards:
            for _ in templify(rows, seed=seed, stats=stats):
                pass
    cpu = time.process_time() - cpu
    data = stats.to_dict()
    rendered_texts = stats.texts - stats.modes.get("raw", 0)
    kept, dropped = stats.pairs_rendered, sum(stats.pairs_dropped.values())
    distinct = data["distinct_patterns"]
    return {
        "folder": str(folder),
        "seeds": seeds,
        "texts": stats.texts,
        "documents": stats.documents,
        "mode_shares": {
            m: round(n / rendered_texts, 4) for m, n in sorted(stats.modes.items()) if m != "raw"
        },
        "raw_texts": stats.modes.get("raw", 0),
        "layouts": data["layouts"],
        "inversion_share": round(stats.inversions / rendered_texts, 4),
        "bare_document_share": data["bare_document_share"],
        "mc_without_options_share": data["mc_without_options_share"],
        "distinct_patterns": {
            f: {
                "used": distinct.get(f, 0),
                "library": data["library_sizes"][f],
                "reference": REFERENCE.get(f),
            }
            for f in sorted(data["library_sizes"])
        },
        "pattern_consistency": data["pattern_consistency"],
        "parse_dropped": summary.get("parse_dropped", {}),
        "pairs": {
            "kept": kept,
            "dropped": dict(stats.pairs_dropped),
            "kept_share": round(kept / (kept + dropped), 4),
            "by_kind": data["pairs_by_kind"],
        },  # fmt: skip
        "speed": {"cpu_seconds": round(cpu, 3), "documents_per_cpu_second": round(stats.documents / cpu)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "folder", nargs="?", help="a finished synthesize folder (default: the bundled corpus)"
    )
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder) if args.folder else synthesize_bundled(Path(tmp))
        figures = report(folder, args.seeds)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{figures['texts']:,} texts from {figures['documents']:,} documents ({args.seeds} seeds; "
          f"{figures['raw_texts']} raw)")  # fmt: skip
    print("modes:      " + ", ".join(f"{m} {s:.1%}" for m, s in figures["mode_shares"].items()))
    print("layouts:    " + ", ".join(f"{k} {v}" for k, v in figures["layouts"].items()))
    print(
        f"inversions: {figures['inversion_share']:.1%}   bare documents (Classic): "
        f"{figures['bare_document_share']:.1%}   "
        f"MC without options: {figures['mc_without_options_share']:.1%}"
    )
    print("distinct patterns used / library size (reference):")
    for family, d in figures["distinct_patterns"].items():
        ref = f" ({d['reference']})" if d["reference"] else ""
        print(f"  {family:<26} {d['used']:>4} / {d['library']:<4}{ref}")
    print("texts with >= 2 pairs of a kind that use one pattern for all of them:")
    for kind, c in figures["pattern_consistency"].items():
        print(f"  {kind:<12} {c['one_pattern']:,} / {c['texts']:,} ({c['share']:.1%})")
    pairs = figures["pairs"]
    print(f"pairs kept {pairs['kept']:,} ({pairs['kept_share']:.1%}), by kind {pairs['by_kind']}; "
          f"dropped {pairs['dropped']}")  # fmt: skip
    print(f"fragments the parser dropped (synthesize, once per document): {figures['parse_dropped']}")
    speed = figures["speed"]
    print(f"speed: {speed['documents_per_cpu_second']:,} documents per CPU second "
          f"({speed['cpu_seconds']} s CPU, Python {sys.version.split()[0]})")  # fmt: skip


if __name__ == "__main__":
    main()
