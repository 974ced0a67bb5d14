"""Three small trust fixes: `status` names a damaged final file as a final file (not "shard 0"),
and shows it next to a damaged shard 0; the openai engine's start-up check gives up on a server
that never completes the connection within `connect_timeout`, not the request timeout; a
built-in engine is never replaced by `register_engine` or an entry point without an explicit
`replace=True`."""

from __future__ import annotations

import json
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from instructpt.cli import main
from instructpt.engines import Registry, engine_specs, register_engine
from instructpt.engines.openai import DEFAULT_CONNECT_TIMEOUT, OpenAIEngine, OpenAIOptions
from instructpt.engines.registry import EngineNameTaken
from instructpt.errors import UsageError
from instructpt.io.integrity import OUTPUT_FILES, check_run, output_problems
from instructpt.io.output import MANIFEST

from .test_engine_options import ToyEngine
from .test_openai_hostile import hanging_server  # noqa: F401 - a fixture
from .test_pipeline import config, make_corpus, run

# -- 1. status: a damaged final file -------------------------------------------------------------


def status(folder: Path, *flags: str) -> Result:
    return CliRunner().invoke(main, ["status", str(folder), *flags])


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


@pytest.fixture
def finished(tmp_path, scripted) -> Path:
    """A finished synthesize folder (5 shards, a rejects.jsonl recorded in its manifest)."""
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)
    folder = tmp_path / "out"
    assert "rejects.jsonl" in json.loads((folder / MANIFEST).read_text())[OUTPUT_FILES]
    return folder


def test_a_damaged_final_file_is_reported_as_one_not_as_shard_0(finished):
    truncate(finished / "rejects.jsonl")
    plain = status(finished)
    assert plain.exit_code == 0, plain.output
    lines = [line for line in plain.output.splitlines() if line.startswith("damaged:")]
    assert len(lines) == 1 and lines[0].startswith("damaged: final file rejects.jsonl: "), plain.output
    assert lines[0].endswith("recorded (truncated or replaced) (a rerun rewrites it)"), lines[0]
    assert "shard 0" not in plain.output
    (entry,) = json.loads(status(finished, "--json").output)["damaged"]
    assert entry["final"] is True and entry["file"] == "rejects.jsonl"
    assert entry["problem"].startswith("rejects.jsonl: ") and isinstance(entry["shard"], int)


def test_a_damaged_shard_0_and_final_file_are_both_shown(finished):
    truncate(finished / "rejects.jsonl")
    truncate(finished / "data/part-00000.parquet")
    plain = status(finished)
    assert "damaged: shard 0: data/part-00000.parquet: " in plain.output, plain.output
    assert "damaged: final file rejects.jsonl: " in plain.output, plain.output
    damaged = json.loads(status(finished, "--json").output)["damaged"]
    assert [(d["shard"], d["final"]) for d in damaged] == [(0, False), (0, True)], damaged
    assert "file" not in damaged[0] and damaged[1]["file"] == "rejects.jsonl"
    assert status(finished, "--verify").exit_code == 1


def test_every_damaged_final_file_is_checked_not_only_the_first_of_a_shard(tmp_path):
    """Two final files recorded under shard 0, both damaged: `check_run` names both (`final`),
    while `output_problems` (one per shard, for mix's rerun decision) still gives the first."""
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_bytes(b"0123456789")
    records = {name: {"bytes": 10, "shard": 0} for name in ("a.jsonl", "b.jsonl")}
    (tmp_path / MANIFEST).write_text(json.dumps({"stage": "mix", "complete": True, OUTPUT_FILES: records}))
    assert check_run(tmp_path).final == {}
    (tmp_path / "a.jsonl").write_bytes(b"01234")
    (tmp_path / "b.jsonl").unlink()
    check = check_run(tmp_path)
    assert check.final == {"a.jsonl": "5 bytes, 10 recorded (truncated or replaced)", "b.jsonl": "missing"}
    assert check.damaged == {0: "a.jsonl: 5 bytes, 10 recorded (truncated or replaced)"}
    assert check.damaged_shards == {} and not check.complete
    assert output_problems(tmp_path, check.manifest) == check.damaged


# -- 2. openai: a server that never completes the connection ----------------------------------------


@pytest.fixture
def unanswered_connect() -> Iterator[str]:
    """A URL whose connections never complete: a listening socket whose accept queue is full, so
    the kernel drops further SYNs (as a firewall or a non-routable address does)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):  # more than the queue holds
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/v1"
    for filler in fillers:
        filler.close()
    listener.close()


def test_the_startup_check_gives_up_on_connecting_after_the_connect_timeout(unanswered_connect, tokenizer):
    started = time.monotonic()
    with pytest.raises(UsageError) as info:
        OpenAIEngine([unanswered_connect], "tiny", tokenizer, timeout=60.0, connect_timeout=0.3)
    elapsed = time.monotonic() - started
    assert elapsed < 5.0, elapsed  # the request timeout (60 s, 30 s for the check) is not waited
    text = str(info.value)
    assert f"cannot reach the server at {unanswered_connect}: no connection within 0.3s" in text, text
    assert "--connect-timeout" in text and "\n" not in text


def test_a_non_routable_address_fails_within_the_connect_timeout(tokenizer):
    url = "http://10.255.255.1:8000/v1"  # offline: refused at once; online: dropped, 0.2 s
    started = time.monotonic()
    with pytest.raises(UsageError, match=f"cannot reach the server at {url}"):
        OpenAIEngine([url], "tiny", tokenizer, connect_timeout=0.2)
    assert time.monotonic() - started < 5.0


def test_a_server_that_connects_but_never_answers_names_the_request_timeout(hanging_server, tokenizer):  # noqa: F811
    with pytest.raises(UsageError) as info:
        OpenAIEngine([hanging_server], "tiny", tokenizer, timeout=0.5, connect_timeout=5.0)
    text = str(info.value)
    assert "no answer from" in text and "within 0.5s" in text and "--request-timeout" in text, text


def test_connect_timeout_is_an_option_and_a_flag_with_a_short_default():
    assert DEFAULT_CONNECT_TIMEOUT <= 10 < OpenAIOptions().request_timeout
    assert OpenAIOptions(connect_timeout=2).connect_timeout == 2.0
    spec = engine_specs()["openai"]
    assert spec.make_options({"model": "m"}, {"connect_timeout": 3}).connect_timeout == 3.0
    with pytest.raises(UsageError, match="connect_timeout"):
        spec.make_options({"model": "m"}, {"connect_timeout": 0})
    assert "--connect-timeout" in CliRunner().invoke(main, ["synthesize", "--help"]).output


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf")])
def test_a_bad_connect_timeout_is_a_usage_error(tokenizer, bad):
    with pytest.raises(UsageError, match="--connect-timeout must be a positive number"):
        OpenAIEngine(["http://127.0.0.1:9/v1"], "tiny", tokenizer, connect_timeout=bad, check_server=False)


# -- 3. a built-in engine is not replaced silently --------------------------------------------------


@pytest.mark.parametrize("name", ["hf", "vllm", "llamacpp", "openai", "rules"])
def test_register_engine_refuses_a_builtin_name_without_replace(name):
    before = engine_specs()[name]
    with pytest.raises(UsageError, match=f"'{name}' is a built-in engine: .*replace=True"):
        register_engine(name, ToyEngine)
    assert engine_specs()[name] == before and before.builtin


def test_replace_true_replaces_a_builtin_and_ones_own_engine_may_be_registered_again():
    register_engine("rules", ToyEngine, replace=True)
    assert engine_specs()["rules"].factory is ToyEngine
    register_engine("mine", ToyEngine)
    register_engine("mine", ToyEngine, description="again")  # one's own: no refusal (notebooks)
    assert engine_specs()["mine"].description == "again"


def test_an_entry_point_named_like_a_builtin_is_ignored_with_one_warning(monkeypatch):
    from importlib import metadata

    points = [metadata.EntryPoint("hf", "evil.pkg:Engine", "instructpt.engines"),
              metadata.EntryPoint("toy", f"{__name__}:ToyEngine", "instructpt.engines")]  # fmt: skip
    monkeypatch.setattr(
        metadata, "entry_points", lambda group=None: points if group == "instructpt.engines" else []
    )
    reg = Registry()
    reg.register("hf", "instructpt.engines.hf:HFEngine.from_options", builtin=True)
    with pytest.warns(EngineNameTaken, match="'hf' \\(evil.pkg:Engine\\) is ignored: hf is a built-in"):
        specs = reg.specs()
    assert specs["hf"].factory == "instructpt.engines.hf:HFEngine.from_options" and "toy" in specs
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        reg.specs()  # loaded once: warned once
    assert not [w for w in seen if issubclass(w.category, EngineNameTaken)]
