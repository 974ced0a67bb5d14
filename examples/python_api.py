"""The public Python API, offline: synthesize, decontaminate, templify, mix and run (run from an
empty folder)."""

import json
from pathlib import Path

from instructpt import (
    DecontaminateSettings,
    MixSettings,
    RunConfig,
    SynthesizeSettings,
    decontaminate,
    from_function,
    mix,
    run,
    synthesize,
    templify,
)
from instructpt.testing import scripted_generate, train_tokenizer


def main() -> None:
    # synthesize: documents in, entries (pairs + chain state) out, with any engine
    docs = [
        "Water boils at 100 °C at sea level. Therefore, pasta cooks faster in the lowlands.",
        {"id": "lever", "text": "A lever multiplies force. In other words, it trades distance for force."},
    ]
    # an offline stand-in for the synthesizer's tokenizer
    tokenizer = train_tokenizer(["Water boils at sea level.", "A lever multiplies force."])
    engine = from_function(scripted_generate, tokenizer)  # any fn(prompts: list[str]) -> list[str]
    entries = list(synthesize(docs, engine, rounds=2))
    for entry in entries:
        print(entry.id, entry.chain_id, entry.round, entry.pairs[0])

    # decontaminate: drop pairs holding an evaluation set's 13-word n-gram (a shorter text, whole)
    # and broken pairs; a contaminated document is cut. Eval sets on disk: eval_sets=["mmlu=test.jsonl"]
    benchmarks = {"my-eval": ["What does sentence 1 of the text say?"]}
    summary: dict = {}
    entries = decontaminate(entries, DecontaminateSettings(), benchmarks=benchmarks, summary=summary)
    print(summary["contamination"], summary["pairs_dropped"])

    # templify: entries in, instruction-augmented texts out
    texts = list(templify(entries, seed=0))
    for text in texts:
        print(text.mode, text.source_ids, repr(text.text[:80]))

    # mix: augmented texts + raw texts -> a tokenized pre-training corpus
    tokenizer.save("tokenizer.json")  # stands in for the tokenizer of the model you will pre-train
    Path("augmented.jsonl").write_text("".join(json.dumps(t.to_dict()) + "\n" for t in texts))
    Path("raw.jsonl").write_text(json.dumps({"text": "An unconverted raw document."}) + "\n")
    settings = MixSettings(
        recipe="scratch",
        raw=["raw.jsonl"],
        tokenizer="tokenizer.json",
        format="jsonl",
        bos_text="<s>",
        eos_text="</s>",
    )
    manifest = mix(settings, augmented=["augmented.jsonl"], output="train")
    print(manifest["complete"], sorted(p.name for p in Path("train").iterdir()))

    # run: the whole pipeline from one config (or a YAML path: run("examples/demo.yaml"))
    lines = [json.dumps({"text": d if isinstance(d, str) else d["text"]}) + "\n" for d in docs]
    Path("corpus.jsonl").write_text("".join(lines))
    config = RunConfig(
        workdir="run",
        synthesize=SynthesizeSettings(inputs=["corpus.jsonl"], engine="rules", model="tokenizer.json"),
        decontaminate=DecontaminateSettings(),  # the pair filters only: no eval_sets given
        mix=MixSettings(
            raw=["raw.jsonl"], tokenizer="tokenizer.json", bos_text="<s>", eos_text="</s>", format="megatron"
        ),
    )
    summary = run(config, progress=False)
    print(sorted(summary), sorted(p.name for p in Path("run/train").iterdir())[:4])


if __name__ == "__main__":  # mix tokenizes in worker processes, which re-import this file
    main()
