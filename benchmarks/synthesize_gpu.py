"""GPU throughput of synthesis engines on a Mistral-7B-shaped model (random weights, no download).

The model is built from Mistral-7B-v0.1's config values (hidden 4096, 32 layers, 32 heads, 8
KV heads, MLP 14336, vocab 32000) with random bf16 weights: generation speed depends on the
shape, not on the weights. Documents are synthetic, ~600 tokens each; generations are forced to
`--gen-tokens` (EOS ignored) so every engine does the same work; 2 rounds, as in SPEC §3.
Reports raw tokens/s (document tokens per second, the paper's measure: ~11.6k on one A100 with
vLLM, i.e. 1B tokens a day), generated tokens/s and documents/s per GPU for each engine
available here:

* `hf`: our transformers engine (length-sorted static batches, left padding, sdpa attention),
  at several `--max-batch-tokens` budgets;
* `hf-cb`: the same engine with transformers' continuous batching (`generate_batch`, paged
  attention; `--continuous-batching` on the CLI).
vLLM is not installed on the lent GPU machines; its figures come from a machine that has it.

    python benchmarks/synthesize_gpu.py [--docs 256] [--gen-tokens 300] [--tiny]   # --tiny: CPU smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

MISTRAL_7B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=32000, max_position_embeddings=32768,
                  rms_norm_eps=1e-5, rope_theta=10000.0, sliding_window=None)  # fmt: skip
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=32000, max_position_embeddings=4096)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=256)
    parser.add_argument("--doc-tokens", type=int, default=600)
    parser.add_argument("--gen-tokens", type=int, default=300)
    parser.add_argument("--budgets", default="65536,262144", help="hf engine --max-batch-tokens values")
    parser.add_argument("--tiny", action="store_true", help="a tiny model on CPU: checks the script runs")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    import torch
    from transformers import MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

    from common import mistral_v01_tokenizer, synthetic_documents
    from instructpt.engines.hf import HFEngine
    from instructpt.records import Document
    from instructpt.synthesis.rounds import RoundSettings, synthesize_batch
    from instructpt.testing import train_tokenizer
    from instructpt.tokenization import Tokenizer

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    rust = mistral_v01_tokenizer() or train_tokenizer(
        [d["text"] for d in synthetic_documents(200, 300)], 8000
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=rust, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    shape = TINY if args.tiny else MISTRAL_7B
    config = MistralConfig(**{**shape, "vocab_size": max(shape["vocab_size"], rust.get_vocab_size())},
                           bos_token_id=1, eos_token_id=2)  # fmt: skip
    torch.manual_seed(0)
    with torch.device(device):
        model = MistralForCausalLM(config).to(dtype)
    model.eval()
    calibration = synthetic_documents(20, 400, seed=1)
    per_word = sum(len(rust.encode(d["text"]).ids) for d in calibration) / (20 * 400)
    docs = [
        Document(d["id"], d["text"]) for d in synthetic_documents(args.docs, int(args.doc_tokens / per_word))
    ]
    settings = RoundSettings(rounds=2, max_new_tokens=args.gen_tokens)
    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    rows = []
    modes = [("hf", int(b)) for b in args.budgets.split(",")] + [("hf-cb", None)]
    for mode, budget in modes:
        engine = HFEngine(model, Tokenizer(hf_tok), max_model_len=4096, max_batch_tokens=budget,
                          model_name="mistral-7b-shape")  # fmt: skip
        engine.ignore_eos = True
        engine.continuous_batching = mode == "hf-cb"
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        started = time.perf_counter()
        try:
            result = synthesize_batch(docs, engine, settings)
        except Exception as exc:  # noqa: BLE001 - report a mode this transformers can't run, go on
            rows.append({"engine": mode, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            continue
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        c = result.counts
        peak = round(torch.cuda.max_memory_allocated() / 2**30, 1) if device == "cuda" else None
        rows.append({
            "engine": mode, "max_batch_tokens": budget, "seconds": round(seconds, 2),
            "raw_tokens_per_s": round(c["raw_tokens"] / seconds),
            "generated_tokens_per_s": round(c["generated_tokens"] / seconds),
            "documents_per_s": round(c["documents"] / seconds, 2), "peak_memory_gib": peak,
        })  # fmt: skip
    print(f"device: {gpu}; model: {'tiny' if args.tiny else 'Mistral-7B shape'}, {dtype}; {args.docs} docs x "
          f"~{args.doc_tokens} tokens, {args.gen_tokens} generated tokens each, 2 rounds")  # fmt: skip
    print("paper: ~11,600 raw tokens/s on one A100-80GB with vLLM (1B tokens/day)")
    for row in rows:
        print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps({"device": gpu, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
