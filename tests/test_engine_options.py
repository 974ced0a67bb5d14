"""Typed engine options: pydantic models per engine, `-O key=value`, `synthesize.engine_options:`,
`instructpt engines list`, the Registry object, and `run` with the openai engine on two servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pydantic import Field

from instructpt.cli import main
from instructpt.config import load_config
from instructpt.engines import (
    Completion,
    Engine,
    EngineOptions,
    Registry,
    Request,
    engine_specs,
    register_engine,
)
from instructpt.engines.openai import OpenAIEngine, OpenAIOptions
from instructpt.engines.rules import respond
from instructpt.errors import UsageError

from .test_pipeline import make_corpus, snapshot


class ToyEngine(Engine):
    """A third-party engine with an option of its own: it answers `suffix` to every prompt."""

    name = "toy"

    class Options(EngineOptions):
        suffix: str = Field("!", description="What every generation is.")
        repeat: int = Field(1, ge=1, description="How often.")

    def __init__(self, options: ToyEngine.Options) -> None:
        from instructpt.tokenization import load_tokenizer

        super().__init__(load_tokenizer(options.model), options.max_model_len)
        self.options = options

    @classmethod
    def from_options(cls, options: ToyEngine.Options) -> ToyEngine:
        return cls(options)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return [Completion(self.options.suffix * self.options.repeat, 1, "stop") for _ in requests]


@pytest.fixture
def tok_file(tmp_path, tokenizer) -> Path:
    path = tmp_path / "tokenizer.json"
    tokenizer.backend.save(str(path))
    return path


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# --- the engine protocol --------------------------------------------------------------------------


def test_engine_declares_agenerate_close_and_whether_it_is_concurrent(tokenizer):
    class Batching(Engine):
        def generate(self, requests):
            return [Completion(r.prompt.upper(), 1) for r in requests]

    class Async(Batching):
        async def agenerate(self, request):
            return Completion("async", 1)

    engine = Batching(tokenizer, 64)
    assert asyncio.run(engine.agenerate(Request("ab", [1], 4))).text == "AB"  # generate in a thread
    asyncio.run(engine.aclose())
    engine.close()
    assert not Batching.concurrent and Async.concurrent  # implementing agenerate opts in
    from instructpt.engines.hf import HFEngine
    from instructpt.engines.vllm import VLLMEngine

    assert OpenAIEngine.concurrent and VLLMEngine.concurrent and not HFEngine.concurrent


def test_a_batching_engine_keeps_the_round_by_round_path(tokenizer, tmp_path):
    """Every engine has an `agenerate` now; only `concurrent` ones get the barrier-free scheduler."""
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis

    from .conftest import ScriptedEngine

    engine = ScriptedEngine(tokenizer, respond)
    sizes: list[int] = []
    original = engine.generate
    engine.generate = lambda requests: sizes.append(len(requests)) or original(requests)
    corpus = make_corpus(tmp_path / "c.jsonl", n=12)
    config = SynthesisConfig(
        inputs=[str(corpus)], output=str(tmp_path / "o"), model="m", engine="s", shard_size=6
    )
    run_synthesis(config, lambda: engine, progress=False, log=lambda m: None)
    assert sizes and max(sizes) > 1  # whole rounds, not one request at a time


# --- the registry ---------------------------------------------------------------------------------


def test_a_registration_in_one_test_a(tokenizer):
    register_engine("leaky-engine", ToyEngine)
    assert "leaky-engine" in engine_specs()


def test_a_registration_in_one_test_b_does_not_leak_into_the_next():
    assert "leaky-engine" not in engine_specs()


def test_a_registry_object_is_independent_of_the_default():
    mine = Registry(entry_points=False)
    mine.register("toy", ToyEngine)
    assert list(mine.specs()) == ["toy"] and "toy" not in engine_specs()
    with mine.isolated():
        mine.register("other", ToyEngine)
        assert "other" in mine.specs()
    assert "other" not in mine.specs()


def test_third_party_engine_from_an_entry_point_gets_its_options(monkeypatch, tok_file):
    from importlib import metadata

    point = metadata.EntryPoint("toy", f"{__name__}:ToyEngine", "instructpt.engines")
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [point] if group == point.group else [])
    reg = Registry()
    spec = reg.spec("toy")
    assert spec.options_model() is ToyEngine.Options
    engine = reg.create("toy", {"model": str(tok_file)}, suffix="?", repeat=2)
    assert engine.generate([Request("x", [1], 4)])[0].text == "??"
    with pytest.raises(UsageError, match="unknown option 'sufix' for the toy engine; .* suffix, repeat"):
        reg.create("toy", {"model": str(tok_file)}, sufix="?")


# --- options: validation and errors ---------------------------------------------------------------


def test_options_are_typed_and_unknown_or_mistyped_ones_name_the_allowed_ones():
    spec = engine_specs()["openai"]
    options = spec.make_options({"model": "m"}, {"base_urls": "http://h:1/v1", "concurrency": 8})
    assert isinstance(options, OpenAIOptions) and options.base_urls == ["http://h:1/v1"]
    assert options.concurrency == 8 and options.request_timeout == 60.0  # the model's default
    with pytest.raises(
        UsageError, match=r"unknown option 'concurency' for the openai engine; .*base_urls, concurrency"
    ):
        spec.make_options({}, {"concurency": 8})
    with pytest.raises(UsageError, match=r"option concurrency='8' .*valid integer.*options are: base_urls"):
        spec.make_options({}, {"concurrency": "8"})
    with pytest.raises(UsageError, match="'model' is a common setting.*--model"):
        spec.make_options({}, {"model": "x"})
    with pytest.raises(UsageError, match="takes no options of its own"):
        engine_specs()["rules"].make_options({}, {"concurrency": 8})


def test_cli_engine_options_errors_are_one_line(tmp_path, tok_file):
    corpus = make_corpus(tmp_path / "c.jsonl", n=3)
    base = ["synthesize", corpus, "-o", tmp_path / "o", "--model", tok_file]
    for args, message in [
        (
            ["--engine", "rules", "-O", "no_such_option=1"],
            "unknown engine option 'no_such_option' for the rules",
        ),
        (["--engine", "openai", "-O", "no_such_option=1"], "concurrency, prompt_format"),
        (["--engine", "openai", "-O", "concurrency=many"], "engine option concurrency='many'"),
        (
            ["--engine", "rules", "--base-url", "http://h/v1"],
            "unknown engine option 'base_urls' for the rules",
        ),
        (["--engine", "openai", "-O", "justakey"], "-O needs key=value"),
        (["--engine", "openai"], "needs base_urls"),
    ]:
        result = invoke(*base, *args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert result.output.strip().count("\n") == 0, result.output


def test_cli_options_reach_the_engine(tmp_path, tok_file):
    register_engine("toy", ToyEngine)
    corpus = make_corpus(tmp_path / "c.jsonl", n=3)
    out = tmp_path / "o"
    result = invoke("synthesize", corpus, "-o", out, "--engine", "toy", "--model", tok_file,
                    "-O", "suffix=<QUE> q <ANS> a </END>", "-O", "repeat=2", "--keep-generations",
                    "--format", "jsonl", "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [
        json.loads(line)
        for f in sorted((out / "data").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert rows and all(r["generation"] == "<QUE> q <ANS> a </END>" * 2 for r in rows)


def test_engines_list_shows_each_engines_options_with_defaults():
    rows = {row["name"]: row for row in json.loads(invoke("engines", "list", "--json").output)}
    openai = {o["name"]: o for o in rows["openai"]["options"]}
    assert openai["concurrency"]["default"] == 64 and openai["base_urls"]["type"] == "list[str]"
    assert rows["rules"]["options"] == []
    text = invoke("engines", "list").output
    assert "-O concurrency=...  (int, default 64)" in text and "-O max_num_seqs=" in text


# --- `run` with the openai engine against two servers, one failing ---------------------------------


@pytest.fixture
def two_servers(servers):
    """A healthy server and one that answers every completion with HTTP 500."""
    return servers(), servers(fail=500)


def run_config(tmp_path: Path, tok_file: Path, workdir: str, engine_options: dict | None) -> Path:
    corpus = tmp_path / "corpus.jsonl"
    if not corpus.exists():
        make_corpus(corpus, n=14)
    synthesize = {"inputs": [str(corpus)], "engine": "openai", "model": "tiny", "tokenizer": str(tok_file),
                  "shard_size": 5, "max_new_tokens": 24, "max_model_len": 512}  # fmt: skip
    if engine_options is not None:
        synthesize["engine_options"] = engine_options
    path = tmp_path / f"{workdir}.yaml"
    path.write_text(yaml.safe_dump({"workdir": str(tmp_path / workdir), "synthesize": synthesize}))
    return path


def test_run_with_the_openai_engine_on_two_servers_one_failing(tmp_path, tok_file, two_servers):
    (good, good_seen), (bad, bad_seen) = two_servers
    from_yaml = run_config(tmp_path, tok_file, "yaml",
                           {"base_urls": [bad, good], "concurrency": 4, "retry_budget": 30.0})  # fmt: skip
    result = invoke("run", from_yaml, "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["synthesize"]["documents"] == 14
    assert bad_seen and good_seen  # requests went to the failing server and were retried on the good one

    # the same options from --set only, the failing server first again
    from_set = run_config(tmp_path, tok_file, "set", None)
    result = invoke("run", from_set, "--json", "--no-progress", "--set",
                    f"synthesize.engine_options.base_urls=[{bad}, {good}]",
                    "--set", "synthesize.engine_options.concurrency=2")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert snapshot(tmp_path / "set/synthesized") == snapshot(tmp_path / "yaml/synthesized")
    assert snapshot(tmp_path / "set/augmented") == snapshot(tmp_path / "yaml/augmented")
    config = load_config(from_set, [f"synthesize.engine_options.base_urls=[{good}]"])
    assert config.synthesize.engine_options == {"base_urls": [good]}


def test_run_rejects_an_unknown_engine_option_in_one_line(tmp_path, tok_file):
    path = run_config(tmp_path, tok_file, "w", {"base_urls": ["http://127.0.0.1:9/v1"], "concurrancy": 4})
    message = (
        r"unknown synthesize.engine_options 'concurrancy' for the openai engine; the openai engine's options"
    )
    with pytest.raises(UsageError, match=message + " are: base_urls, concurrency"):
        load_config(path)
    result = invoke("run", path)
    assert result.exit_code != 0 and "'concurrancy'" in result.output
    assert result.output.strip().count("\n") == 0 and not (tmp_path / "w").exists()
    mistyped = run_config(tmp_path, tok_file, "w2", {"base_urls": ["http://127.0.0.1:9/v1"]})
    with pytest.raises(UsageError, match=r"concurrency='4'.*valid integer.*options are: base_urls"):
        load_config(mistyped, ["synthesize.engine_options.concurrency='4'"])
    with pytest.raises(UsageError, match="base_urls is an option of the openai engine: set "
                       "synthesize.engine_options.base_urls"):  # fmt: skip
        load_config(mistyped, ["synthesize.base_urls=[http://h/v1]"])


def test_settings_defaults_are_written_once():
    """The YAML section, the CLI flags and the pipeline's config share every default."""
    from instructpt.config import MixSettings, SynthesizeSettings, TemplifySettings
    from instructpt.engines import DEFAULT_MAX_MODEL_LEN
    from instructpt.mixing.recipes import MixConfig
    from instructpt.synthesis.stage import SynthesisConfig

    s = SynthesizeSettings(inputs=["a"])
    config = s.synthesis_config("rules", "out")
    plain = SynthesisConfig(inputs=["a"], output="out", model=s.model, engine="rules")
    assert config == plain and s.max_model_len == DEFAULT_MAX_MODEL_LEN == EngineOptions().max_model_len
    m = MixSettings(tokenizer="t")
    mixed = m.mix_config([], "out")
    keys = ("format", "seq_len", "seed", "workers", "shard_tokens", "upsample", "bos_text")
    assert {k: getattr(mixed, k) for k in keys} == {k: getattr(MixConfig([], "out", "t"), k) for k in keys}
    synth_help = invoke("synthesize", "--help").output
    assert f"[default: {DEFAULT_MAX_MODEL_LEN}]" in synth_help and "[default: 64]" in synth_help
    assert f"[default: {TemplifySettings().seed}]" in invoke("templify", "--help").output
