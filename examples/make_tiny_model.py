"""Build the demo's tiny synthesizer offline: a tokenizer trained on the example corpus and
a random-weight Mistral model. It writes nonsense (random weights) but loads and runs
exactly like instruction-pretrain/instruction-synthesizer.

    python examples/make_tiny_model.py [OUTPUT_FOLDER] [--tokenizer-only]

The tokenizer needs only the core install (`tokenizers`); the model needs torch and
transformers (`pip install 'instructpt[hf]'`). With --tokenizer-only, or without torch, only
the tokenizer is written: enough for `--engine rules` and for `mix --tokenizer`.
"""

import json
import sys
from pathlib import Path

from instructpt.testing import build_tiny_model, save_tiny_tokenizer


def can_build_model() -> bool:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


args = [a for a in sys.argv[1:] if not a.startswith("--")]
tokenizer_only = "--tokenizer-only" in sys.argv[1:]
folder = Path(args[0] if args else "demo-out/tiny-synthesizer")
with_model = not tokenizer_only and can_build_model()
corpus = Path(__file__).parent / "corpus.jsonl"
texts = [json.loads(line)["text"] for line in corpus.open()]
if (folder / ("config.json" if with_model else "tokenizer.json")).is_file():
    print(f"{folder} exists")
elif with_model:
    build_tiny_model(folder, texts, vocab_size=2000)
    print(f"built {folder}")
else:
    save_tiny_tokenizer(folder, texts, vocab_size=2000)
    why = "" if tokenizer_only else " (no torch/transformers: the model needs pip install 'instructpt[hf]')"
    print(f"built the tokenizer in {folder}{why}")
