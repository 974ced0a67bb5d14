"""User mistakes on the Python API, `train-synthesizer`, `evaluate`, `plan`, `report` and the
engines' environment: one UsageError (one `Error:` line, exit code 1), never a traceback, a
pydantic dump or a silent wrong result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import instructpt
from instructpt.errors import UsageError
from instructpt.testing import scripted_generate, train_tokenizer


@pytest.fixture(scope="module")
def engine() -> Any:
    tokenizer = train_tokenizer(["Water boils at sea level.", "A lever multiplies force."])
    return instructpt.from_function(scripted_generate, tokenizer)


def cli(*args: str) -> Any:
    from instructpt.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result: Any, *words: str) -> str:
    """The command failed with one `Error:` line holding `words`, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, KeyError | TypeError)
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: "), result.output
    for word in words:
        assert word in line, line
    return line


# -- the Python API --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"engine": None}, "engine must be an Engine"),
        ({"engine": "rules"}, "engine must be an Engine"),
        ({"documents": None}, "documents must be a list"),
        ({"documents": "one text"}, "not one str"),
        ({"rounds": "2"}, "rounds must be"),
        ({"batch_size": 0}, "batch_size must be"),
        ({"batch_size": -1}, "batch_size must be"),
        ({"max_new_tokens": -5}, "max_new_tokens must be"),
    ],
)
def test_synthesize_refuses_bad_arguments(engine, kwargs, words):
    args = {"documents": ["Water boils at sea level."], "engine": engine, **kwargs}
    with pytest.raises(UsageError, match=words):
        list(instructpt.synthesize(args.pop("documents"), args.pop("engine"), **args))


@pytest.mark.parametrize(
    ("records", "words"),
    [
        ("one text", "not one str"),
        (None, "not one NoneType"),
        (["a text"], "not a str"),
        ([{"text": "x", "id": "a"}], "is not a synthesize row"),
        (
            [{"id": "a", "text": "x", "pairs": ["q?"], "chain_id": "a", "round": 0, "inherits": False}],
            "pairs",
        ),
    ],
)
def test_templify_refuses_what_is_not_synthesize_records(records, words):
    with pytest.raises(UsageError, match=words):
        list(instructpt.templify(records))


def test_templify_refuses_a_seed_that_is_not_an_int():
    with pytest.raises(UsageError, match="seed must be an int"):
        list(instructpt.templify([], seed="0"))


@pytest.mark.parametrize(
    ("records", "kwargs", "words"),
    [
        ("abc", {}, "not one str"),
        (["abc"], {}, "record 0 is a str"),
        ([], {"benchmarks": ["What is it?"]}, "benchmarks must map a name"),
    ],
)
def test_decontaminate_refuses_bad_arguments(records, kwargs, words):
    with pytest.raises(UsageError, match=words):
        instructpt.decontaminate(records, **kwargs)


@pytest.mark.parametrize(
    "build",
    [
        lambda: instructpt.MixSettings(raw="raw.jsonl", tokenizer="t.json"),
        lambda: instructpt.MixSettings(tokenizer="t.json", format="xx"),
        lambda: instructpt.DecontaminateSettings(n=13),
        lambda: instructpt.SynthesizeSettings(inputs="corpus.jsonl"),
        lambda: instructpt.SynthesizeSettings(inputs=["corpus.jsonl"], rounds=-1),
        lambda: instructpt.RunConfig(workdir="w"),
    ],
)
def test_settings_built_in_python_refuse_bad_values_with_one_line(build):
    with pytest.raises(UsageError) as info:
        build()
    message = str(info.value)
    assert "\n" not in message and "errors.pydantic.dev" not in message
    assert message.split(":")[0].endswith(("Settings", "RunConfig")), message


def test_mix_refuses_bad_arguments(tmp_path):
    settings = instructpt.MixSettings(recipe="scratch", raw=["raw.jsonl"], tokenizer="t.json", format="jsonl")
    with pytest.raises(UsageError, match="augmented must be a list"):
        instructpt.mix(
            settings, augmented="aug.jsonl", output=str(tmp_path / "o")
        )  # was "input not found: a"
    with pytest.raises(UsageError, match="settings must be a MixSettings"):
        instructpt.mix({"recipe": "scratch"}, augmented=["aug.jsonl"], output=str(tmp_path / "o"))
    with pytest.raises(UsageError, match="output must be a folder path"):
        instructpt.mix(settings, augmented=["aug.jsonl"], output=None)


@pytest.mark.parametrize(
    ("config", "words"), [({"workdir": "x"}, "not dict"), (None, "not NoneType"), (3, "not int")]
)
def test_run_refuses_a_config_of_the_wrong_type(config, words):
    with pytest.raises(UsageError, match=words):
        instructpt.run(config)


def test_run_refuses_overrides_given_as_one_string(tmp_path):
    with pytest.raises(UsageError, match="overrides must be a list"):
        instructpt.run(tmp_path / "run.yaml", overrides="workdir=x")


def test_from_function_refuses_what_is_not_callable():
    with pytest.raises(UsageError, match="from_function needs a function"):
        instructpt.from_function("scripted", train_tokenizer(["a b"]))


# -- train-synthesizer -----------------------------------------------------------------------


def ft_records(n: int = 4) -> str:
    return "".join(
        json.dumps({"context": f"Document {i} says the river is {i} km long.", "dataset": "d", "kind": "x",
                    "pairs": [{"instruction": f"How long is river {i}?", "response": f"{i} km"}]}) + "\n"
        for i in range(n)
    )  # fmt: skip


@pytest.fixture
def ft(tmp_path) -> Path:
    data = tmp_path / "ft"
    data.mkdir()
    (data / "d.jsonl").write_text(ft_records())
    return data


def train(tmp_path: Path, base: Path | str, data: Path, *extra: str, out: str = "out") -> Any:
    return cli("train-synthesizer", "--base", base, "--data", data, "-o", tmp_path / out, "--max-len", "128",
               *extra)  # fmt: skip


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json\n", "invalid JSON"),
        (
            json.dumps({"text": "Q: a\nA: b", "id": "x", "source_ids": ["x"]}) + "\n",
            "not a fine-tuning record",
        ),
        (json.dumps({"question": "q", "answers": ["a"]}) + "\n", "ft-data convert"),
        (json.dumps({"context": "c", "pairs": ["q?"]}) + "\n", "row 1"),
        ("\n", "holds no fine-tuning records"),
    ],
)
def test_train_synthesizer_refuses_data_that_is_not_fine_tuning_records(tmp_path, content, words):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    one_line_error(train(tmp_path, tmp_path / "no-model", bad, "--max-steps", "1"), words)


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--max-steps", "0"], "--max-steps must be at least 1"),  # trained a whole epoch before
        (["--max-steps", "-5"], "--max-steps must be at least 1"),
        (["--epochs", "0"], "--epochs must be greater than 0"),  # "trained 0 steps", exit 0, before
        (["--lr", "-1"], "--lr must be greater than 0"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--grad-accum", "0"], "--grad-accum must be at least 1"),  # ZeroDivisionError before
        (["--max-len", "0", "--max-steps", "1"], "--max-len must be at least 1"),
    ],
)
def test_train_synthesizer_refuses_bad_numbers_before_loading_anything(tmp_path, ft, flags, words):
    one_line_error(train(tmp_path, tmp_path / "no-model", ft, *flags), words)
    assert not (tmp_path / "out").exists()


def test_train_synthesizer_refuses_an_output_folder_holding_other_files(tmp_path, ft):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    one_line_error(train(tmp_path, tmp_path / "no-model", ft, "--max-steps", "1"), "already holds files")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_train_synthesizer_refuses_to_write_into_its_base_model(tiny_model, ft):
    result = cli(
        "train-synthesizer", "--base", tiny_model, "--data", ft, "-o", tiny_model, "--max-steps", "1"
    )
    one_line_error(result, "base model's folder")


def test_train_synthesizer_on_a_model_folder_without_weights(tmp_path, tiny_model, ft):
    pytest.importorskip("transformers")
    base = tmp_path / "no-weights"
    base.mkdir()
    for f in tiny_model.iterdir():
        if f.suffix != ".safetensors" and f.is_file():
            (base / f.name).write_bytes(f.read_bytes())
    one_line_error(
        train(tmp_path, base, ft, "--max-steps", "1"), "cannot load the model", "model.safetensors"
    )


def test_train_synthesizer_lora_merge_without_lora(tmp_path, ft):
    one_line_error(train(tmp_path, tmp_path / "m", ft, "--merge"), "--merge applies to --lora")


# -- evaluate --------------------------------------------------------------------------------


def suite(tmp_path: Path, text: str, rows: str | None = None) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    if rows is not None:
        (tmp_path / "rows.jsonl").write_text(rows)
    return path


@pytest.mark.parametrize(
    ("text", "rows", "words"),
    [
        ("tasks: [\n", None, "is not valid YAML"),
        ("- arc_easy\n", None, "must hold `tasks:`"),
        ("tasks: arc_easy\n", None, "must hold `tasks:`"),
        ("tasks:\n  - name: t\n    path: nope.jsonl\n", None, "input not found"),
        (
            "tasks:\n  - name: t\n    path: rows.jsonl\n",
            json.dumps({"question": "q", "answers": ["a"]}) + "\n",
            "lack input, options, gold_index",
        ),
        ("tasks:\n  - name: t\n    path: rows.jsonl\n", "\n", "holds no rows"),
    ],
)
def test_evaluate_refuses_a_broken_suite_before_loading_the_model(tmp_path, text, rows, words):
    pytest.importorskip("lm_eval")
    path = suite(tmp_path, text, rows)
    one_line_error(
        cli("evaluate", "--model", tmp_path / "no-model", "--suite", path, "-o", tmp_path / "e"), words
    )


def test_evaluate_checks_the_data_dir_tasks_fields(tmp_path):
    pytest.importorskip("lm_eval")
    for task in ("ChemProt", "RCT", "MQP"):
        (tmp_path / "d" / task).mkdir(parents=True)
        (tmp_path / "d" / task / "test.json").write_text(json.dumps([{"input": "q", "options": ["a"]}]))
    data = tmp_path / "d"
    result = cli("evaluate", "--model", "m", "--suite", "biomedicine", "--data-dir", data, "-o", data / "e")
    one_line_error(result, "instructpt_chemprot", "lack gold_index")


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--limit", "-1"], "--limit must be greater than 0"),
        (["--limit", "0"], "--limit must be greater than 0"),
        (["--num-fewshot", "-2"], "--num-fewshot must be at least 0"),
        (["--batch-size", "big"], "--batch-size must be a positive number or auto"),
        (["--batch-size", "0"], "--batch-size must be a positive number or auto"),
    ],
)
def test_evaluate_refuses_bad_numbers(tmp_path, flags, words):
    result = cli("evaluate", "--model", tmp_path / "m", "--suite", "general", "-o", tmp_path / "e", *flags)
    one_line_error(result, words)


def test_evaluate_unknown_suite(tmp_path):
    pytest.importorskip("lm_eval")
    one_line_error(
        cli("evaluate", "--model", "m", "--suite", "nosuch", "-o", tmp_path / "e"), "unknown suite"
    )


# -- plan, report, engines -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a: [\n", "is not valid YAML"),
        ("- a\n- b\n", "must hold a mapping"),
        ("", "workdir: Field required"),
        ("workdir: x\n", "synthesize: Field required"),
        ("workdir: x\nsynthesize: [1, 2]\n", "synthesize: Input should be a valid dictionary"),
    ],
)
def test_plan_on_broken_configs(tmp_path, text, words):
    (tmp_path / "run.yaml").write_text(text)
    one_line_error(cli("plan", tmp_path / "run.yaml"), words)


def test_report_on_an_empty_folder_and_a_missing_one(tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(
        cli("report", tmp_path / "empty", "-o", tmp_path / "r.html"), "is not an instructpt output"
    )
    one_line_error(cli("report", tmp_path / "nope", "-o", tmp_path / "r.html"), "is not a folder")
    assert not (tmp_path / "r.html").exists()


def test_engines_list_runs_without_optional_backends():
    result = cli("engines", "list")
    assert result.exit_code == 0, result.output
    assert "vllm" in result.output


def test_synthesize_with_vllm_not_installed_says_what_to_install(tmp_path):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed")
    (tmp_path / "c.jsonl").write_text(json.dumps({"text": "A document. Another sentence."}) + "\n")
    result = cli("synthesize", tmp_path / "c.jsonl", "-o", tmp_path / "s", "--engine", "vllm", "--model", "m")
    one_line_error(result, "pip install 'instructpt[vllm]'")


def test_a_failing_openai_server_stops_within_the_budget_and_names_the_flag(tokenizer):
    from .test_openai_hostile import Server, engine_for, one_request, reply

    s = Server(tokenizer, [reply(503, {"error": "down"})])
    try:
        with pytest.raises(UsageError, match="retry budget 0.2s.*--retry-budget") as info:
            one_request(engine_for(s.url, tokenizer, retry_budget=0.2), tokenizer)
    finally:
        s.close()
    assert "\n" not in str(info.value)


def test_an_unreachable_openai_server_fails_at_start_without_retrying(tmp_path):
    import socket
    import time

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / "c.jsonl").write_text(json.dumps({"text": "A document. Another sentence."}) + "\n")
    (tmp_path / "tok.json").write_text(train_tokenizer(["A document. Another sentence."]).to_str())
    started = time.monotonic()
    result = cli("synthesize", tmp_path / "c.jsonl", "-o", tmp_path / "s", "--engine", "openai",
                 "--base-url", f"http://127.0.0.1:{port}/v1", "--model", tmp_path / "tok.json")  # fmt: skip
    one_line_error(result, "cannot reach the server", f"127.0.0.1:{port}")
    assert time.monotonic() - started < 20


# -- output folders that cannot be written ---------------------------------------------------
# (chmod 500 does not stop root, who runs these tests here: a file in the way stands in for it,
# and a PermissionError is simulated)


def test_train_synthesizer_and_evaluate_refuse_an_output_under_a_file_before_any_work(tmp_path, ft):
    (tmp_path / "f").write_text("")
    one_line_error(train(tmp_path, tmp_path / "no-model", ft, "--max-steps", "1", out="f/out"), "f is a file")
    result = cli("evaluate", "--model", "m", "--suite", "nosuch", "-o", tmp_path / "f" / "out")
    one_line_error(result, "f is a file")


def test_a_folder_that_may_not_be_created_is_one_line(tmp_path, monkeypatch):
    from instructpt.io.files import make_folder

    def refuse(self: Path, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(UsageError, match="permission denied; choose a folder you can write to"):
        make_folder(tmp_path / "locked" / "out")


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"executor": "ray", "ray_workers": -1}, "ray_workers must be at least 1"),  # started Ray before
        ({"executor": "ray", "ray_workers": 0}, "ray_workers must be at least 1"),
        ({"gpus_per_worker": -0.5}, "gpus_per_worker must be zero or more"),
    ],
)
def test_run_refuses_bad_worker_numbers_before_starting_anything(tmp_path, kwargs, words):
    with pytest.raises(UsageError, match=words):
        instructpt.run(tmp_path / "missing.yaml", **kwargs)


@pytest.mark.parametrize(
    ("name", "factory", "words"),
    [
        (3, "pkg.mod:make", "an engine name is a non-empty string"),
        ("", "pkg.mod:make", "an engine name is a non-empty string"),
        ("auto", "pkg.mod:make", "other than 'auto'"),
        ("mine", 4, "the factory must be a callable"),
        ("mine", "pkg.mod", "'module:attribute' string"),
    ],
)
def test_register_engine_refuses_what_could_never_be_created(name, factory, words):
    from instructpt.engines.registry import registry

    with registry().isolated():
        with pytest.raises(UsageError, match=words):
            instructpt.register_engine(name, factory)
        assert name not in registry().specs()


def test_train_synthesizer_says_to_raise_max_len_when_every_record_is_longer(tmp_path, tiny_model, ft):
    one_line_error(train(tmp_path, tiny_model, ft, "--max-steps", "1", "--max-len", "4"), "raise --max-len")
