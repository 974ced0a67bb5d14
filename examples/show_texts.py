"""Print what `instructpt templify` wrote: the mix of modes, and one text per mode.

python examples/show_texts.py OUTPUT_FOLDER
"""

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

out = Path(sys.argv[1])
summary = json.loads((out / "summary.json").read_text())
print(json.dumps({k: summary[k] for k in ("texts", "documents", "modes", "inversions",
                                          "distinct_patterns_total")}, indent=2))  # fmt: skip
shown = set()
for row in pq.read_table(out / "data").to_pylist():
    if row["mode"] in shown or row["mode"] == "raw":
        continue
    shown.add(row["mode"])
    text = row["text"] if len(row["text"]) < 1500 else row["text"][:1500] + "\n[...]"
    print(f"\n===== {row['mode']}: {row['id']} ({row['n_shots']} shots, {row['n_pairs']} pairs)\n{text}")
