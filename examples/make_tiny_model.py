"""Build the demo's tiny synthesizer offline: a tokenizer trained on the example corpus and
a random-weight Mistral model. It writes nonsense (random weights) but loads and runs
exactly like instruction-pretrain/instruction-synthesizer.

    python examples/make_tiny_model.py OUTPUT_FOLDER
"""

import json
import sys
from pathlib import Path

from instructpt.testing import build_tiny_model

folder = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-out/tiny-synthesizer")
if (folder / "config.json").is_file():
    print(f"{folder} exists")
else:
    corpus = Path(__file__).parent / "corpus.jsonl"
    texts = [json.loads(line)["text"] for line in corpus.open()]
    build_tiny_model(folder, texts, vocab_size=2000)
    print(f"built {folder}")
