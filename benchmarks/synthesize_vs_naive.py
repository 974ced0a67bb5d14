"""Our pipeline against the model card's basic usage: one `model.generate` per document.

Both run the same random-weight Mistral-architecture model (built here, offline), on the
same prose documents of ~600 tokens (benchmarks/inputs.py, calibrated with the model's own
tokenizer), with the same settings (greedy, one round, same max_new_tokens) and the same
number of torch threads (`--threads`, default 1: one core), so they generate the same tokens;
the difference is batching (length-sorted, left-padded, token-budgeted) and the pipeline
around it. Model loading is outside the timed region of both in-process variants. Every
variant runs once untimed (warm-up), then `--repeat` times in alternating order: median and
min-max. Also: our 2-round run (docs/method.md), and end to end through the CLI
(`instructpt synthesize --engine hf`, a fresh process: start-up and model loading included).

    python benchmarks/synthesize_vs_naive.py [--docs 64] [--tokens 600] [--max-new-tokens 64]
                                             [--threads 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=600, help="tokens per document")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = one core)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    threads = str(args.threads)
    os.environ.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, RAYON_NUM_THREADS=threads,
                      HF_HUB_DISABLE_PROGRESS_BARS="1")  # fmt: skip

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from common import write_jsonl
    from inputs import corpus_sentences, prose_documents
    from instructpt.engines import EngineOptions, create_engine
    from instructpt.synthesis.format import build_prompt, parse_pairs
    from instructpt.synthesis.rounds import RoundSettings
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis
    from instructpt.testing import build_tiny_model
    from instructpt.tokenization import load_tokenizer
    from measure import cli, compare, load_now, machine, table

    torch.set_num_threads(args.threads)
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "model", list(corpus_sentences()), vocab_size=4000,
                                     hidden_size=args.hidden, num_layers=args.layers)  # fmt: skip
        docs = prose_documents(args.docs, args.tokens, load_tokenizer(str(model_dir)), seed=3)
        corpus = write_jsonl(Path(tmp) / "corpus.jsonl", docs)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        naive: dict = {}

        def run_naive() -> float:  # the model card's basic usage, once per document
            generated, texts = 0, []
            started = time.perf_counter()
            for doc in docs:
                ids = tokenizer(
                    build_prompt(doc["text"]), add_special_tokens=False, return_tensors="pt"
                ).input_ids
                with torch.inference_mode():
                    out = model.generate(input_ids=ids, max_new_tokens=args.max_new_tokens, do_sample=False,
                                         pad_token_id=tokenizer.eos_token_id)  # fmt: skip
                new = out[0, ids.shape[1] :].tolist()
                generated += len(new)
                texts.append(tokenizer.decode(new, skip_special_tokens=True))
                parse_pairs(texts[-1])
            seconds = time.perf_counter() - started
            naive.update(generated=generated, texts=texts)
            return seconds

        runs = {"n": 0}
        summaries: dict[int, dict] = {}

        def ours(rounds: int):
            def run() -> float:
                runs["n"] += 1
                out = Path(tmp) / f"ours{runs['n']}"
                config = SynthesisConfig(
                    inputs=[str(corpus)], output=str(out), model=str(model_dir), engine="hf",
                    shard_size=len(docs), format="jsonl", min_parse_rate=0.0,  # random weights: no pairs
                    rounds=RoundSettings(rounds=rounds, max_new_tokens=args.max_new_tokens,
                                         keep_generations=True),
                )  # fmt: skip
                engine = create_engine("hf", EngineOptions(model=str(model_dir), max_model_len=4096))
                started = time.perf_counter()  # the model is loaded outside, as for the naive loop
                summaries[rounds] = run_synthesis(config, lambda: engine, progress=False, log=lambda m: None)
                seconds = time.perf_counter() - started
                if rounds == 1:
                    summaries[0] = {"rows": [json.loads(x) for x in (out / "data/part-00000.jsonl").open()]}
                return seconds

            return run

        command = cli("synthesize", str(corpus), "-o", str(Path(tmp) / "cli"), "--engine", "hf", "--model",
                      str(model_dir), "--rounds", "1", "--max-new-tokens", str(args.max_new_tokens),
                      "--shard-size", str(len(docs)), "--min-parse-rate", "0", "--overwrite",
                      "--no-progress")  # fmt: skip
        variants = {
            "naive generate per document": run_naive,
            "instructpt hf, 1 round": ours(1),
            "instructpt hf, 2 rounds": ours(2),
            "instructpt synthesize (CLI), 1 round": command,
        }
        times = compare(variants, repeats=args.repeat)
        same = sum(r["generation"] == t for r, t in zip(summaries[0]["rows"], naive["texts"]))

    n = len(docs)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device {device}, torch threads {torch.get_num_threads()}, "
          f"model hidden={args.hidden} layers={args.layers}, {n} docs of ~{args.tokens} tokens, "
          f"max_new_tokens={args.max_new_tokens}; load at the end {load_now()}")  # fmt: skip
    table(n, "documents", times, base="naive generate per document")
    generated = {k: summaries[k]["tokens"]["generated"] for k in (1, 2)}
    print(f"generated tokens: naive {naive['generated']}, ours 1 round {generated[1]}, 2 rounds "
          f"{generated[2]}; identical generations (1 round): {same}/{n}")  # fmt: skip


if __name__ == "__main__":
    main()
