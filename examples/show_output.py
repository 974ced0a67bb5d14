"""Print what `instructpt synthesize` wrote: the summary, two entries, the rejects.

python examples/show_output.py OUTPUT_FOLDER
"""

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

out = Path(sys.argv[1])
summary = json.loads((out / "summary.json").read_text())
print(
    json.dumps(
        {
            k: summary[k]
            for k in (
                "documents",
                "entries",
                "pairs",
                "pairs_per_entry",
                "entries_inheriting",
                "long_docs",
                "rejected_by_reason",
            )
        },
        indent=2,
    )
)
rows = pq.read_table(out / "data").to_pylist()
for row in [r for r in rows if r["inherits"]][:1] + rows[:1]:
    print(
        f"\n== {row['id']} (chain {row['chain_id']}, round {row['round']}, inherits={row['inherits']}, "
        f"{row['prompt_tokens']} prompt tokens)"
    )
    print(row["text"][:300] + ("..." if len(row["text"]) > 300 else ""))
    for pair in row["pairs"]:
        print(f"  Q: {pair['instruction']!r}\n  A: {pair['response']!r}")
print("\n== rejects.jsonl")
print((out / "rejects.jsonl").read_text(), end="")
