"""Budgets: `instructpt plan` and `synthesize --target-tokens`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from instructpt.cli import main
from instructpt.config import load_config
from instructpt.engines.rules import RulesEngine
from instructpt.errors import UsageError
from instructpt.io.integrity import check_run
from instructpt.planning import THROUGHPUTS, marker_training_tokens, plan
from instructpt.synthesis.rounds import RoundSettings
from instructpt.synthesis.stage import SynthesisConfig, run_synthesis

from .conftest import EXAMPLES
from .test_pipeline import make_corpus, snapshot


@pytest.fixture
def tok(tmp_path):
    from instructpt.testing import save_tiny_tokenizer

    return save_tiny_tokenizer(tmp_path / "tok")


def write_config(tmp_path, tok, **synth) -> str:
    text = {"workdir": str(tmp_path / "work"), "synthesize": {"inputs": [str(EXAMPLES / "corpus.jsonl")],
            "engine": "rules", "model": str(tok), "shard_size": 8, **synth}}  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(text))  # JSON is YAML
    return str(path)


def test_plan_counts_exactly_what_synthesis_then_does(tmp_path, tok):
    # 64 new tokens fit no pair of the rules engine here: the collapse guard would stop the run
    config = load_config(
        write_config(tmp_path, tok, max_model_len=512, max_new_tokens=64, min_parse_rate=0.0)
    )
    p = plan(config)
    cfg = config.synthesize.synthesis_config("rules", str(tmp_path / "out"))
    summary = run_synthesis(cfg, lambda: RulesEngine(str(tok), 512), progress=False, log=lambda m: None)
    assert p["generations"] == summary["entries"] > summary["documents"] == p["documents"]  # long docs split
    assert p["raw_tokens"] == summary["tokens"]["raw"]
    assert p["long_docs"]["parts"] == summary["long_docs"]["parts"] > 0
    assert p["generated_tokens"]["max"] == 64 * p["generations"] >= summary["tokens"]["generated"]
    assert [r["raw_tok_per_s"] for r in p["gpu_hours"]] == list(THROUGHPUTS.values())


def test_a_sample_is_scaled_to_the_whole_corpus(tmp_path, tok):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "text": f"Lake {i} is deep and cold."}) + "\n"
                              for i in range(300)))  # fmt: skip
    full = plan(load_config(write_config(tmp_path, tok, inputs=[str(corpus)])))
    sampled = plan(load_config(write_config(tmp_path, tok, inputs=[str(corpus)])), sample=30)
    assert not full["sampled"] and sampled["sampled"] and sampled["documents_read"] == 30
    assert sampled["documents"] == full["documents"] == 300
    assert sampled["raw_tokens"] == pytest.approx(full["raw_tokens"], rel=0.1)


def test_throughput_override_and_the_mix_recipe(tmp_path, tok):
    path = write_config(tmp_path, tok)
    data = json.loads(open(path).read())
    data["mix"] = {"recipe": "domain", "ratio": "2:1", "general": ["g.parquet"], "tokenizer": str(tok)}
    open(path, "w").write(json.dumps(data))
    p = plan(load_config(path), tok_per_s=1000.0, generated_share=0.25)
    assert p["gpu_hours"] == [
        {"at": "--tok-per-s", "raw_tok_per_s": 1000.0, "hours": p["raw_tokens"] / 3.6e6}
    ]
    assert p["generated_tokens"]["expected"] == round(p["generated_tokens"]["max"] * 0.25)
    assert p["mix"]["general"] == round(p["augmented_tokens"] / 2)
    assert p["mix"]["total"] == p["augmented_tokens"] + p["mix"]["general"]


def test_plan_cli_text_json_and_errors(tmp_path, tok):
    path = write_config(tmp_path, tok)
    text = CliRunner().invoke(main, ["plan", path])
    assert text.exit_code == 0, text.output
    assert "generations:" in text.output and "GPU-hours:" in text.output
    js = CliRunner().invoke(main, ["plan", path, "--json", "--sample", "5"])
    assert json.loads(js.output)["documents_read"] == 5
    for args, word in ((["--sample", "0"], "--sample"), (["--tok-per-s", "-1"], "--tok-per-s"),
                       (["--set", "synthesize.model=/nonexistent/tok"], "nonexistent")):  # fmt: skip
        bad = CliRunner().invoke(main, ["plan", path, *args])
        assert bad.exit_code == 1 and word in bad.output and "Traceback" not in bad.output


def scratch_config(tmp_path, tok, mix_tok) -> str:
    """examples/corpus.jsonl synthesized with `tok`, mixed (scratch) with raw texts in `mix_tok`."""
    raw = make_corpus(tmp_path / "raw.jsonl", n=12)  # with broken lines: rejects, as mix rejects them
    raw.write_text(raw.read_text().replace('"id": "doc', '"id": "raw'))
    path = write_config(tmp_path, tok, max_model_len=512, max_new_tokens=64, min_parse_rate=0.0)
    data = json.loads(open(path).read())
    data["mix"] = {"recipe": "scratch", "raw": [str(raw)], "tokenizer": str(mix_tok), "format": "jsonl",
                   "workers": 1}  # fmt: skip
    open(path, "w").write(json.dumps(data))
    return path


@pytest.fixture
def mix_tok(tmp_path):
    """A tokenizer of another vocabulary, trained on the corpus: far fewer tokens per text."""
    from instructpt.testing import save_tiny_tokenizer

    texts = [json.loads(line)["text"] for line in (EXAMPLES / "corpus.jsonl").open()]
    return save_tiny_tokenizer(tmp_path / "mix-tok", texts, vocab_size=600)


def test_mix_totals_are_counted_with_the_mix_tokenizer_as_mix_counts(tmp_path, tok, mix_tok):
    from instructpt.workflow import run

    path = scratch_config(tmp_path, tok, mix_tok)
    same = [f"mix.tokenizer={tok}"]  # the synthesizer's tokenizer for the mix too
    p, p_same = plan(load_config(path)), plan(load_config(path, same))
    mixed = run(path, progress=False, log=lambda m: None)["mix"]["sources"]
    mixed_same = run(path, overrides=same, progress=False, log=lambda m: None)["mix"]["sources"]
    raw, raw_same = mixed[1]["tokens_available"], mixed_same[1]["tokens_available"]
    assert p["mix"]["raw"] == raw != raw_same == p_same["mix"]["raw"]  # exactly what mix counted
    assert (p["mix"]["tokenizer"], p_same["mix"]["tokenizer"]) == (str(mix_tok), str(tok))
    assert p["mix"]["vocab_size"] != p_same["mix"]["vocab_size"]
    # The synthesize figures stay in the synthesizer's tokens; the augmented share is rescaled.
    assert {k: v for k, v in p.items() if k != "mix"} == {k: v for k, v in p_same.items() if k != "mix"}
    scale = p["mix"]["tokens_per_synthesizer_token"]
    assert p_same["mix"]["tokens_per_synthesizer_token"] == 1 and scale < 0.9
    assert p["mix"]["augmented"] == round(p["augmented_tokens"] * scale) < p_same["mix"]["augmented"]
    assert p["mix"]["total"] == p["mix"]["augmented"] + raw
    real_scale = mixed[0]["tokens_available"] / mixed_same[0]["tokens_available"]
    assert scale == pytest.approx(real_scale, rel=0.1)  # the augmented texts shrink about as much


def test_each_corpus_is_tokenized_once_per_tokenizer(tmp_path, tok, mix_tok, monkeypatch):
    import instructpt.planning as planning

    calls: list[tuple[str, tuple[str, ...]]] = []
    count = planning.count_corpus

    def spy(inputs, tokenizer, **kwargs):
        calls.append((tokenizer.name, tuple(inputs)))
        return count(inputs, tokenizer, **kwargs)

    monkeypatch.setattr(planning, "count_corpus", spy)
    path = scratch_config(tmp_path, tok, mix_tok)
    plan(load_config(path))
    assert len(calls) == len(set(calls)) == 3  # inputs with each tokenizer, raw with the mix one
    calls.clear()
    plan(load_config(path, [f"mix.tokenizer={tok}/"]))  # the same folder, named another way
    assert len(calls) == len(set(calls)) == 2  # the synthesizer's counts of the inputs reused


def test_plan_names_the_tokenizer_of_each_figure_and_mix_tokenizer_errors(tmp_path, tok, mix_tok):
    path = scratch_config(tmp_path, tok, mix_tok)
    text = CliRunner().invoke(main, ["plan", path])
    assert text.exit_code == 0, text.output
    lines = {line.split(":")[0].strip(): line for line in text.output.splitlines()}
    assert f"tokenizer {tok})" in lines["corpus"] and "synthesizer's tokenizer" in lines["augmented"]
    assert f"tokenizer {mix_tok}, vocabulary 600)" in lines["mix (scratch)"]
    assert "synthesizer tokens x" in text.output  # how the augmented share was rescaled
    js = json.loads(CliRunner().invoke(main, ["plan", path, "--json"]).output)
    assert js["tokenizer"] == str(tok) and js["mix"]["tokenizer"] == str(mix_tok)
    for value, word in (
        ("/nonexistent/tok2", "folder not found"),
        (str(EXAMPLES / "demo.yaml"), "tokenizer.json"),  # a file, not a tokenizer
    ):
        bad = CliRunner().invoke(main, ["plan", path, "--set", f"mix.tokenizer={value}"])
        assert bad.exit_code == 1 and "Traceback" not in bad.output, bad.output
        assert bad.output.startswith("Error: mix.tokenizer: ") and word in bad.output and value in bad.output


def synth_config(tmp_path, target, out="out") -> SynthesisConfig:
    return SynthesisConfig(inputs=[str(EXAMPLES / "corpus.jsonl")], output=str(tmp_path / out), model="t",
                           engine="rules", shard_size=8, rounds=RoundSettings(rounds=2),
                           target_tokens=target)  # fmt: skip


def synth(config, tokenizer, engines=None):
    def make():
        if engines is not None:
            engines.append(1)
        return RulesEngine(tokenizer)

    return run_synthesis(config, make, progress=False, log=lambda m: None)


def test_target_tokens_stops_cleanly_and_a_larger_target_continues(tmp_path, tokenizer):
    clean = synth(synth_config(tmp_path, None, out="clean"), tokenizer)
    per_shard = [
        marker_training_tokens(m["counts"]) for _, m in sorted(check_run(tmp_path / "clean").good.items())
    ]
    target = sum(per_shard[:2]) + 1  # reached after the third shard
    first = synth(synth_config(tmp_path, target), tokenizer)
    assert first["stopped"] == "target_tokens" and first["complete"] and first["shards"] == 3
    assert first["training_tokens_estimate"] == sum(per_shard[:3]) >= target
    engines: list[int] = []
    again = synth(synth_config(tmp_path, target), tokenizer, engines)
    assert again["shards"] == 3 and not engines  # already complete: no engine loaded
    more = synth(synth_config(tmp_path, sum(per_shard[:4]) + 1), tokenizer)
    assert more["stopped"] == "target_tokens" and more["shards"] == 5
    rest = synth(synth_config(tmp_path, None), tokenizer)
    assert "stopped" not in rest and rest["shards"] == clean["shards"] == len(per_shard)
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "clean")  # as if never stopped


def test_a_stopped_run_feeds_templify(tmp_path, tokenizer):
    from instructpt.templating.stage import run_templify

    synth(synth_config(tmp_path, 1000), tokenizer)
    summary = run_templify(tmp_path / "out", tmp_path / "aug", progress=False, log=lambda m: None)
    assert summary["documents"] > 0


def test_target_tokens_needs_one_process(tmp_path, tokenizer):
    with pytest.raises(UsageError, match="--target-tokens"):
        run_synthesis(synth_config(tmp_path, 10), lambda: RulesEngine(tokenizer), num_workers=2)


def fraction_config(tmp_path, tok, mix_tok) -> str:
    """examples/scratch.yaml in small: convert a fifth of examples/corpus.jsonl, mix it with the
    rest of the same file (the scratch recipe's complement) and fine-tuning data repeated 3 times."""
    from .test_corpus_split import write_ft_data

    path = write_config(tmp_path, tok, max_model_len=512, max_new_tokens=64, min_parse_rate=0.0, fraction=0.2)
    data = json.loads(open(path).read())
    data["mix"] = {"recipe": "scratch", "raw": [str(EXAMPLES / "corpus.jsonl")], "tokenizer": str(mix_tok),
                   "ft_data": [str(write_ft_data(tmp_path / "ft-data"))], "ft_repeat": 3, "format": "jsonl",
                   "workers": 1}  # fmt: skip
    open(path, "w").write(json.dumps(data))
    return path


def test_plan_of_a_fraction_counts_what_the_scratch_run_converts_and_mixes(tmp_path, tok, mix_tok):
    from instructpt.workflow import run

    path = fraction_config(tmp_path, tok, mix_tok)
    p, whole = plan(load_config(path)), plan(load_config(path, ["synthesize.fraction=1"]))
    done = run(path, progress=False, log=lambda m: None)
    summary, sources = done["synthesize"], {s["name"]: s for s in done["mix"]["sources"]}
    assert p["documents"] == summary["documents"] and p["generations"] == summary["entries"]
    assert p["raw_tokens"] == summary["tokens"]["raw"]
    assert p["documents"] + p["not_selected"] == whole["documents"] == 56  # every document, once
    assert whole["generations"] > p["generations"] and "not_selected" not in whole
    # The raw share is the complement, counted as mix counted it; the ft texts as mix rendered them.
    assert p["mix"]["raw"] == sources["raw"]["tokens_available"]
    assert sources["raw"]["documents_available"] == p["not_selected"]
    assert p["mix"]["ft"] == sources["ft"]["target_tokens"] == 3 * sources["ft"]["tokens_available"] > 0
    assert p["mix"]["total"] == p["mix"]["augmented"] + p["mix"]["raw"] + p["mix"]["ft"]
    assert any("leaving out of the raw share" in note for note in p["mix"]["notes"])
    text = CliRunner().invoke(main, ["plan", path])
    assert text.exit_code == 0, text.output
    assert (
        f"{p['documents']} documents to convert (synthesize.fraction 0.2; {p['not_selected']} left"
        in text.output
    )
    assert "ft 1" in text.output or f"ft {p['mix']['ft']:,}" in text.output


def test_a_custom_ft_data_source_is_rendered_and_repeated(tmp_path, tok, mix_tok):
    path = fraction_config(tmp_path, tok, mix_tok)
    scratch = plan(load_config(path))
    data = json.loads(open(path).read())
    ft = data["mix"].pop("ft_data")
    data["mix"].update(
        recipe="custom", sources=[{"name": "ft", "paths": ft, "render": "ft-data", "repeat": 2}]
    )
    open(path, "w").write(json.dumps(data))
    custom = plan(load_config(path))
    assert custom["mix"]["ft"] * 3 == scratch["mix"]["ft"] * 2 > 0
    assert "raw" not in custom["mix"] and custom["mix"]["notes"] == []


def test_a_sampled_fraction_is_selected_by_id_and_scaled(tmp_path, tok):
    rows = [
        json.dumps({"id": f"lake-{i}", "text": f"Lake {i} is {'very ' * (i % 7)}deep."}) + "\n"
        for i in range(400)
    ]
    corpus, shuffled = tmp_path / "c.jsonl", tmp_path / "shuffled.jsonl"
    corpus.write_text("".join(rows))
    shuffled.write_text("".join(rows[1::2] + rows[::2]))
    full, moved = (plan(load_config(write_config(tmp_path, tok, inputs=[str(c)], fraction=0.3)))
                   for c in (corpus, shuffled))  # fmt: skip
    for key in ("documents", "not_selected", "raw_tokens"):  # by id, not by position
        assert full[key] == moved[key]
    assert full["documents"] + full["not_selected"] == 400 and 80 < full["documents"] < 160
    sampled = plan(load_config(write_config(tmp_path, tok, inputs=[str(corpus)], fraction=0.3)), sample=40)
    assert sampled["sampled"] and sampled["documents_read"] == 40
    assert sampled["documents"] == pytest.approx(full["documents"], rel=0.2)
    assert sampled["documents"] + sampled["not_selected"] == pytest.approx(400, abs=1)
    assert sampled["raw_tokens"] == pytest.approx(full["raw_tokens"], rel=0.2)


# --target-tokens decides the run's extent from the markers alone: the same shards whatever order
# they finish in (the async scheduler keeps SHARDS_IN_FLIGHT shards open), on any resume.
CORPUS_TEXTS = [json.loads(line)["text"] for line in (EXAMPLES / "corpus.jsonl").read_text().splitlines()]


class ShuffledRules(RulesEngine):
    """RulesEngine's answers through `agenerate` (so the async scheduler runs it), each request
    held back by `slow[shard]` ticks of its chain's first document's shard: shards finish out of
    order, differently for each `slow`."""

    def __init__(self, tokenizer, slow: list[int]) -> None:
        super().__init__(tokenizer)
        self.slow = slow

    async def agenerate(self, request):
        import asyncio

        shard = next((i // 8 for i, text in enumerate(CORPUS_TEXTS) if text[:60] in request.prompt), 0)
        await asyncio.sleep(0.03 * self.slow[shard % len(self.slow)])
        return self.generate([request])[0]


def run_of(folder) -> dict:
    """What a finished synthesize run is, less times: summary, manifest, and the bytes of the files
    of the run's own shards (those its manifest records)."""

    def timeless(value):
        if isinstance(value, dict):
            return {
                k: timeless(v) for k, v in value.items() if k not in ("seconds", "finished_at", "mtime_ns")
            }
        return [timeless(v) for v in value] if isinstance(value, list) else value

    manifest = json.loads((folder / "manifest.json").read_text())
    summary = json.loads((folder / "summary.json").read_text())
    summary.pop("this_run", None)
    files = {name: (folder / name).read_bytes() for m in manifest["shards"].values() for name in m["files"]}
    files["rejects.jsonl"] = (folder / "rejects.jsonl").read_bytes()
    return {"manifest": timeless(manifest), "summary": timeless(summary), "files": files}


def finish_order(folder) -> list[int]:
    markers = {**check_run(folder).good, **check_run(folder).beyond}
    return sorted(markers, key=lambda i: markers[i]["finished_at"])


def per_shard_tokens(tmp_path, tokenizer) -> list[int]:
    synth(synth_config(tmp_path, None, out="clean"), tokenizer)
    return [
        marker_training_tokens(m["counts"]) for _, m in sorted(check_run(tmp_path / "clean").good.items())
    ]


def test_target_tokens_ends_at_the_same_shard_whatever_order_shards_finish_in(tmp_path, tokenizer):
    per_shard = per_shard_tokens(tmp_path, tokenizer)
    target = sum(per_shard[:1]) + 1  # reached with the second shard: k = 2
    sync = synth(synth_config(tmp_path, target, out="sync"), tokenizer)
    assert sync["shards"] == 2 and sync["stopped"] == "target_tokens"
    orders = {}
    for name, slow in (("early-slow", [4, 0, 1, 0, 0, 0, 0]), ("late-slow", [0, 1, 4, 3, 0, 0, 0])):
        cfg = synth_config(tmp_path, target, out=name)
        summary = run_synthesis(
            cfg, lambda s=slow: ShuffledRules(tokenizer, s), progress=False, log=lambda m: None
        )
        assert summary["shards"] == 2 and summary["stopped"] == "target_tokens"
        assert summary["training_tokens_estimate"] == sum(per_shard[:2])
        orders[name] = finish_order(tmp_path / name)
        assert run_of(tmp_path / name) == run_of(tmp_path / "sync")
        assert sorted(check_run(tmp_path / name).good) == [0, 1]  # the run; what went past it is `beyond`
    assert orders["early-slow"][0] != 0  # shard 0 finished after others: the timing did differ
    assert orders["early-slow"] != orders["late-slow"]


def test_shards_past_the_target_are_kept_and_a_rerun_without_it_uses_them(tmp_path, tokenizer):
    from instructpt.executor.status import run_status

    per_shard = per_shard_tokens(tmp_path, tokenizer)
    target = sum(per_shard[:1]) + 1
    cfg = synth_config(tmp_path, target)
    first = run_synthesis(
        cfg, lambda: ShuffledRules(tokenizer, [4, 0, 0, 0]), progress=False, log=lambda m: None
    )
    out = tmp_path / "out"
    extra = sorted(check_run(out).beyond)
    assert first["shards"] == 2 and extra and min(extra) == 2  # computed ahead while shard 0 ran
    info = run_status(out)
    assert (
        info["complete"]
        and info["shards_done"] == info["shards_total"] == 2
        and info["shards_beyond"] == len(extra)
    )
    assert info["documents_done"] == first["documents"] == 16
    shown = CliRunner().invoke(main, ["status", str(out)])
    assert f"{len(extra)} shard(s) computed beyond the target" in shown.output, shown.output
    kept = {i: (out / "shards" / f"part-{i:05d}.json").read_bytes() for i in extra}
    rest = synth(synth_config(tmp_path, None), tokenizer)
    assert "stopped" not in rest and rest["shards"] == len(per_shard)
    assert {i: (out / "shards" / f"part-{i:05d}.json").read_bytes() for i in extra} == kept  # not recomputed
    assert run_of(out) == run_of(tmp_path / "clean")  # as if never stopped
    assert snapshot(out) == snapshot(tmp_path / "clean")
