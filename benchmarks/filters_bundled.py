"""Pair filters and decontamination on the bundled corpus, through the command line (BENCHMARKS §9).

Runs, in a fresh folder: the demo tokenizer (`examples/make_tiny_model.py --tokenizer-only`),
`instructpt synthesize examples/corpus.jsonl --engine rules`, an evaluation set of planted texts
(a sentence copied from one document, the first pair that synthesis wrote for another, and a
near-miss: a third document's sentence with its middle word changed, which no 13-gram matches),
then `instructpt decontaminate` with the default filters and again with `--dedupe
--min-groundedness 0.5`. Prints each command and the counts by reason.

    python benchmarks/filters_bundled.py [WORKDIR]
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def sh(*args: str, cwd: Path) -> str:
    print("$ " + " ".join(shlex.quote(a) for a in args), flush=True)
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def sentence_with(doc_text: str, words: int = 13) -> str:
    """The first sentence of a document with at least `words` words."""
    for s in doc_text.replace("\n", " ").split(". "):
        if len(s.split()) >= words:
            return s.strip()
    raise SystemExit("no sentence long enough")


def main() -> None:
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="filters-"))
    work.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "instructpt"]
    sh(sys.executable, str(EXAMPLES / "make_tiny_model.py"), "tok", "--tokenizer-only", cwd=work)
    synth = json.loads(sh(*cli, "synthesize", str(EXAMPLES / "corpus.jsonl"), "-o", "synth", "--engine",
                          "rules", "--model", "tok", "--no-progress", "--json", cwd=work))  # fmt: skip
    print(f"synthesize: {synth['documents']} documents, {synth['entries']} entries, {synth['pairs']} pairs")

    docs = [json.loads(line) for line in (EXAMPLES / "corpus.jsonl").read_text().splitlines()]
    rows = pq.read_table(work / "synth" / "data").to_pylist()
    seen = Counter(p["instruction"] for r in rows for p in r["pairs"])
    # a pair of its own: a generic instruction ("What is the most suitable title for this text?", 9
    # words, so matched whole) would flag every pair that asks it
    pair = next(
        p for r in rows if r["doc_id"] == docs[1]["id"] for p in r["pairs"] if seen[p["instruction"]] == 1
    )
    near = sentence_with(docs[2]["text"], 20).split()
    near[len(near) // 2] = "zebra"  # no 13 consecutive words left in common
    planted = [
        {"id": "doc-sentence", "question": sentence_with(docs[0]["text"])},
        {"id": "generated-pair", "question": pair["instruction"], "answer": pair["response"]},
        {"id": "near-miss", "question": " ".join(near)},
    ]
    (work / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in planted))
    print(f"eval set: {[r['id'] for r in planted]} from documents {[d['id'] for d in docs[:3]]}")

    for out, extra in (("clean", []), ("strict", ["--dedupe", "--min-groundedness", "0.5"])):
        summary = json.loads(sh(*cli, "decontaminate", "synth", "-o", out, "--eval-set", "planted=eval.jsonl",
                                *extra, "--no-progress", "--json", cwd=work))  # fmt: skip
        keys = ("documents_in", "documents_out", "documents_cut", "documents_dropped", "pairs_in",
                "pairs_out", "pairs_dropped", "contamination")  # fmt: skip
        print(json.dumps({k: summary.get(k) for k in keys}, indent=1))


if __name__ == "__main__":
    main()
