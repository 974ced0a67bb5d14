"""Our pipeline against the model card's basic usage: one `model.generate` per document.

Both run the same random-weight Mistral-architecture model (built here, offline), on the
same documents, with the same settings (greedy, one round, same max_new_tokens), so
they generate the same tokens; the difference is batching (length-sorted, left-padded,
token-budgeted) and the pipeline around it. Also reports our 2-round run (SPEC §3).

    python benchmarks/synthesize_vs_naive.py [--docs 64] [--words 150] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=64)
    parser.add_argument("--words", type=int, default=150, help="words per document")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from common import synthetic_documents, write_jsonl
    from instructpt.engines import EngineOptions, create_engine
    from instructpt.synthesis.format import build_prompt, parse_pairs
    from instructpt.synthesis.rounds import RoundSettings
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis
    from instructpt.testing import build_tiny_model

    torch.set_num_threads(torch.get_num_threads())
    docs = synthetic_documents(args.docs, args.words, seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(
            Path(tmp) / "model",
            [d["text"] for d in docs[:50]],
            vocab_size=4000,
            hidden_size=args.hidden,
            num_layers=args.layers,
        )
        corpus = write_jsonl(Path(tmp) / "corpus.jsonl", docs)

        # The model card's basic usage, once per document.
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        naive_generated = 0
        naive_texts = []
        started = time.perf_counter()
        for doc in docs:
            ids = tokenizer(
                build_prompt(doc["text"]), add_special_tokens=False, return_tensors="pt"
            ).input_ids
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids,
                    max_new_tokens=args.max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.eos_token_id,
                )
            new = out[0, ids.shape[1] :].tolist()
            naive_generated += len(new)
            text = tokenizer.decode(new, skip_special_tokens=True)
            naive_texts.append(text)
            parse_pairs(text)
        naive_s = time.perf_counter() - started
        del model

        def ours(rounds: int, out: str) -> tuple[float, dict]:
            options = EngineOptions(model=str(model_dir), max_model_len=4096)
            config = SynthesisConfig(
                inputs=[str(corpus)],
                output=str(Path(tmp) / out),
                model=str(model_dir),
                engine="hf",
                shard_size=len(docs),
                format="jsonl",
                rounds=RoundSettings(
                    rounds=rounds, max_new_tokens=args.max_new_tokens, keep_generations=True
                ),
            )
            engine = create_engine("hf", options)  # loaded outside the timed region, like the naive model
            started = time.perf_counter()
            summary = run_synthesis(config, lambda: engine, progress=False, log=lambda m: None)
            return time.perf_counter() - started, summary

        one_s, one = ours(1, "one-round")
        two_s, two = ours(2, "two-rounds")
        import json

        rows = [
            json.loads(x) for x in (Path(tmp) / "one-round/data/part-00000.jsonl").read_text().splitlines()
        ]
        same = sum(r["generation"] == t for r, t in zip(rows, naive_texts))

    n = len(docs)
    print(
        f"device {'cuda' if torch.cuda.is_available() else 'cpu'}, torch threads {torch.get_num_threads()}, "
        f"model hidden={args.hidden} layers={args.layers}, {n} docs of {args.words} words, "
        f"max_new_tokens={args.max_new_tokens}"
    )
    row = "{:<32}{:>9.2f}{:>9.2f}{:>11.0f}".format
    print(f"{'run':<32}{'seconds':>9}{'docs/s':>9}{'gen tok/s':>11}")
    print(row("naive generate per document", naive_s, n / naive_s, naive_generated / naive_s))
    print(row("instructpt hf, 1 round", one_s, n / one_s, one["tokens"]["generated"] / one_s))
    print(row("instructpt hf, 2 rounds", two_s, n / two_s, two["tokens"]["generated"] / two_s))
    print(
        f"speed-up, 1 round vs naive: {naive_s / one_s:.1f}x documents/s; identical generations: {same}/{n}"
    )


if __name__ == "__main__":
    main()
