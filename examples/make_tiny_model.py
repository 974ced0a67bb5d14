"""Build the demo's tiny synthesizer offline: a tokenizer trained on the example corpus and
a random-weight Mistral model. It writes nonsense (random weights) but loads and runs
exactly like instruction-pretrain/instruction-synthesizer.

    python examples/make_tiny_model.py [OUTPUT_FOLDER] [--tokenizer-only]

The tokenizer needs only the core install (`tokenizers`); the model needs torch and
transformers (`pip install 'instructpt[hf]'`). With --tokenizer-only, or without torch, only
the tokenizer is written: enough for `--engine rules` and for `mix --tokenizer`.
"""

import argparse
import json
from pathlib import Path


def can_build_model() -> bool:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="make_tiny_model.py",
        description="Build the demo's tiny random-weight synthesizer (or only its tokenizer) offline.",
    )
    parser.add_argument(
        "folder",
        nargs="?",
        default="demo-out/tiny-synthesizer",
        metavar="OUTPUT_FOLDER",
        help="where to write it [default: %(default)s]",
    )
    parser.add_argument(
        "--tokenizer-only",
        action="store_true",
        help="write only the tokenizer (enough for --engine rules and mix --tokenizer)",
    )
    args = parser.parse_args()  # --help prints the usage and exits before anything is written

    from instructpt.testing import build_tiny_model, save_tiny_tokenizer

    folder = Path(args.folder)
    with_model = not args.tokenizer_only and can_build_model()
    corpus = Path(__file__).parent / "corpus.jsonl"
    texts = [json.loads(line)["text"] for line in corpus.open()]
    if (folder / ("config.json" if with_model else "tokenizer.json")).is_file():
        print(f"{folder} exists")
    elif with_model:
        build_tiny_model(folder, texts, vocab_size=2000)
        print(f"built {folder}")
    else:
        save_tiny_tokenizer(folder, texts, vocab_size=2000)
        why = (
            ""
            if args.tokenizer_only
            else " (no torch/transformers: the model needs pip install 'instructpt[hf]')"
        )
        print(f"built the tokenizer in {folder}{why}")


if __name__ == "__main__":
    main()
