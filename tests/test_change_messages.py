"""A folder refused because its inputs or settings changed says exactly what changed (the files
added, removed or resized, with their sizes; a same-size edit with its times; settings as
`key: old -> new`) and gives one piece of advice: the flag of that command that starts it over
(--rebuild for synthesize and mix, --overwrite for templify and decontaminate). `mix --augmented`
given a part of a stage folder is refused, naming the folder to pass."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from instructpt.cli import main
from instructpt.io.changes import SHOWN_CHANGES, settings_changed

EXAMPLES = Path(__file__).parent.parent / "examples"
LINES = (EXAMPLES / "corpus.jsonl").read_text().splitlines(keepends=True)


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, terminal_width=200)


def refused(result) -> str:
    """The one-line error of a refused command."""
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> Path:
    from instructpt.testing import save_tiny_tokenizer

    folder = tmp_path_factory.mktemp("tok") / "tok"
    save_tiny_tokenizer(folder, [json.loads(line)["text"] for line in LINES], vocab_size=800)
    return folder


@pytest.fixture
def work(tmp_path, tok, monkeypatch):
    """A corpus folder in/ of two files, raw/ for mix, and the helpers to run each stage."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in/a.jsonl").write_text("".join(LINES[:12]))
    (tmp_path / "in/b.jsonl").write_text("".join(LINES[12:20]))
    (tmp_path / "raw").mkdir()
    for name in "pqrstu":
        rows = [
            {"id": f"{name}{i}", "text": f"Raw note {name}{i} on rivers and hills. " * 4} for i in range(3)
        ]
        (tmp_path / f"raw/{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def synthesize(*extra: object):
    return invoke("synthesize", "in", "-o", "S", "--engine", "rules", "--model", os.environ["TOK"],
                  "--shard-size", 8, *extra)  # fmt: skip


def mix(*extra: object, augmented: str = "T"):
    return invoke("mix", "--augmented", augmented, "--raw", "raw", "--tokenizer", os.environ["TOK"],
                  "-o", "M", *extra)  # fmt: skip


@pytest.fixture(autouse=True)
def _tok_env(tok, monkeypatch):
    monkeypatch.setenv("TOK", str(tok))


def edit_same_size(path: Path) -> int:
    """Change a letter of `path` in place (same size, a later mtime); returns its size."""
    data = path.read_bytes()
    path.write_bytes(data.replace(b"e", b"E", 1))
    later = path.stat().st_mtime_ns + 2_000_000_000
    os.utime(path, ns=(later, later))
    return len(data)


def assert_advice(message: str, flag: str) -> None:
    other = {"--rebuild": "--overwrite", "--overwrite": "--rebuild"}[flag]
    assert f"pass {flag} to start it over" in message and other not in message, message


# -- synthesize: (a) edited in place, (b) a file added, (c) one removed, (d) a setting ------------


def test_synthesize_names_a_file_edited_in_place_with_its_size_and_times(work):
    assert synthesize().exit_code == 0
    size = edit_same_size(work / "in/a.jsonl")
    message = refused(synthesize())
    assert "a.jsonl: content changed, same size" in message and f"({size:,} bytes)" in message
    assert "modified " in message and " -> " in message
    assert_advice(message, "--rebuild")
    assert synthesize("--rebuild").exit_code == 0  # the advice works


def test_synthesize_names_a_resized_an_added_and_a_removed_file(work):
    assert synthesize().exit_code == 0
    a, b = work / "in/a.jsonl", work / "in/b.jsonl"
    old_a, old_b = a.stat().st_size, b.stat().st_size
    with a.open("a") as handle:
        handle.write(LINES[30])
    message = refused(synthesize())
    assert f"a.jsonl: {old_a:,} -> {a.stat().st_size:,} bytes" in message and "other inputs" in message
    assert_advice(message, "--rebuild")
    a.write_text("".join(LINES[:12]))
    (work / "in/c.jsonl").write_text("".join(LINES[40:44]))
    message = refused(synthesize())
    assert f"c.jsonl added ({(work / 'in/c.jsonl').stat().st_size:,} bytes)" in message
    assert_advice(message, "--rebuild")
    (work / "in/c.jsonl").unlink()
    b.unlink()
    message = refused(synthesize())
    assert f"b.jsonl removed (was {old_b:,} bytes)" in message
    assert_advice(message, "--rebuild")
    assert synthesize("--rebuild").exit_code == 0


def test_synthesize_names_a_changed_setting(work):
    assert synthesize().exit_code == 0
    message = refused(synthesize("--shard-size", 9))  # after the --shard-size 8 of synthesize()
    assert "other settings (shard_size: 8 -> 9)" in message
    assert_advice(message, "--rebuild")


# -- templify and decontaminate have --overwrite only ---------------------------------------------


def test_templify_names_its_changed_seed_and_a_rewritten_source(work):
    assert synthesize().exit_code == 0
    assert invoke("templify", "S", "-o", "T").exit_code == 0
    message = refused(invoke("templify", "S", "-o", "T", "--seed", 5))
    assert "T holds a run with other settings (seed: 0 -> 5)" in message
    assert_advice(message, "--overwrite")
    (work / "in/c.jsonl").write_text(LINES[50])
    assert synthesize("--rebuild").exit_code == 0
    message = refused(invoke("templify", "S", "-o", "T"))
    assert f"{(work / 'S').resolve()}: rewritten by another run (fingerprint " in message
    assert_advice(message, "--overwrite")
    assert invoke("templify", "S", "-o", "T", "--overwrite").exit_code == 0


def test_decontaminate_names_the_changed_eval_set_option(work):
    assert synthesize().exit_code == 0
    (work / "eval.jsonl").write_text(json.dumps({"question": json.loads(LINES[3])["text"][:200]}) + "\n")
    assert invoke("decontaminate", "S", "-o", "D", "--eval-set", "q=eval.jsonl").exit_code == 0
    message = refused(invoke("decontaminate", "S", "-o", "D", "--eval-set", "q=eval.jsonl", "--ngram", 8))
    assert "index.n: 13 -> 8" in message
    assert_advice(message, "--overwrite")


# -- mix ------------------------------------------------------------------------------------------


@pytest.fixture
def mixed(work):
    assert synthesize().exit_code == 0
    assert invoke("templify", "S", "-o", "T").exit_code == 0
    assert mix().exit_code == 0
    return work


def test_mix_names_each_raw_file_changed(mixed):
    raw = mixed / "raw"
    size = edit_same_size(raw / "p.jsonl")
    message = refused(mix())
    assert "p.jsonl: content changed, same size" in message and f"({size:,} bytes)" in message
    assert_advice(message, "--rebuild")
    (raw / "v.jsonl").write_text((raw / "q.jsonl").read_text().replace('"q', '"v'))
    message = refused(mix())
    assert f"v.jsonl added ({(raw / 'v.jsonl').stat().st_size:,} bytes)" in message
    q_size = (raw / "q.jsonl").stat().st_size
    (raw / "q.jsonl").unlink()
    message = refused(mix())
    assert f"q.jsonl removed (was {q_size:,} bytes)" in message
    assert_advice(message, "--rebuild")
    assert mix("--rebuild").exit_code == 0


def test_mix_lists_a_few_changes_then_how_many_more(mixed):
    shutil.rmtree(mixed / "raw")
    (mixed / "raw").mkdir()
    for i in range(9):
        (mixed / f"raw/n{i}.jsonl").write_text(json.dumps({"id": f"n{i}", "text": "A new raw note."}) + "\n")
    message = refused(mix())
    # 9 added + 6 removed: the first few by name, then the count
    assert message.count(" added (") + message.count(" removed (") == SHOWN_CHANGES
    assert f"; and {15 - SHOWN_CHANGES} more)" in message
    assert_advice(message, "--rebuild")


def test_mix_names_a_changed_setting_and_a_rewritten_templify_folder(mixed):
    message = refused(mix("--seed", 5))
    assert "M holds a run with other settings (seed: 0 -> 5)" in message
    assert_advice(message, "--rebuild")
    assert invoke("templify", "S", "-o", "T", "--seed", 3, "--overwrite").exit_code == 0
    message = refused(mix())
    assert "T: rewritten by another run (fingerprint " in message
    assert_advice(message, "--rebuild")


# -- mix --augmented: all of a run, or a refusal naming it ----------------------------------------


@pytest.mark.parametrize("part", ["T/data/part-00000.parquet", "T/data", "T/data/*.parquet"])
def test_mix_refuses_a_part_of_a_templify_folder_naming_it(mixed, part):
    message = refused(mix(augmented=part))
    assert f"--augmented {part} is part of the templify output T: pass --augmented T" in message


def test_mix_refuses_a_synthesize_shard_as_augmented_texts(mixed):
    message = refused(mix(augmented="S/data/part-00000.parquet"))
    assert "is part of the synthesize output S" in message and "instructpt templify S" in message


def test_mix_says_a_texts_file_outside_a_templify_folder_was_used_whole(mixed):
    import pyarrow.parquet as pq

    shutil.copy(mixed / "T/data/part-00000.parquet", mixed / "texts.parquet")
    texts = pq.read_table(mixed / "texts.parquet").num_rows
    result = mix("--overwrite", augmented="texts.parquet")
    assert result.exit_code == 0, result.output
    assert f"--augmented texts.parquet: not a templify output folder; all {texts:,} texts" in result.output


# -- the message itself -----------------------------------------------------------------------------

names = st.lists(st.from_regex(r"[a-z]{1,8}\.jsonl", fullmatch=True), unique=True, max_size=12)


@settings(max_examples=60, deadline=None)
@given(old=names, new=names, seed=st.integers(0, 3))
def test_every_file_change_is_named_or_counted(old, new, seed):
    files = lambda paths: [{"path": p, "bytes": 10 + len(p)} for p in paths]  # noqa: E731
    before, after = {"inputs": files(old), "seed": 0}, {"inputs": files(new), "seed": seed}
    exc = settings_changed("OUT", "synthesize", before, after)
    expected = len(set(old) ^ set(new)) + (seed != 0)
    message = str(exc)
    assert "\n" not in message and message.startswith("OUT holds a run with other ")
    named = message.count(" added (") + message.count(" removed (") + message.count("seed: 0 -> ")
    assert named == min(expected, SHOWN_CHANGES) or expected == 0
    if expected > SHOWN_CHANGES:
        assert f"; and {expected - SHOWN_CHANGES} more)" in message
    assert "pass --rebuild to start it over" in message


def test_decontaminate_names_the_file_of_a_changed_eval_set(work):
    """A changed eval set is named by its benchmark and by the file it was read from (as given)."""
    assert synthesize().exit_code == 0
    texts = [json.loads(line)["text"][:200] for line in LINES[3:5]]
    evals = work / "evals"
    evals.mkdir()
    (evals / "quiz.jsonl").write_text(json.dumps({"question": texts[0]}) + "\n")
    assert invoke("decontaminate", "S", "-o", "D", "--eval-set", "q=evals/quiz.jsonl").exit_code == 0
    (evals / "quiz.jsonl").write_text("".join(json.dumps({"question": t}) + "\n" for t in texts))
    (evals / "extra.jsonl").write_text(json.dumps({"question": texts[1]}) + "\n")
    message = refused(invoke("decontaminate", "S", "-o", "D", "--eval-set", "q=evals/quiz.jsonl",
                             "--eval-set", "evals/extra.jsonl"))  # fmt: skip
    assert "index.benchmarks.q.texts (from evals/quiz.jsonl): 1 -> 2" in message, message
    assert "index.benchmarks.extra (from evals/extra.jsonl): (none) -> " in message, message
    assert_advice(message, "--overwrite")
    # the same command still resumes: naming the files changed nothing the folder is known by
    (evals / "quiz.jsonl").write_text(json.dumps({"question": texts[0]}) + "\n")
    again = invoke("decontaminate", "S", "-o", "D", "--eval-set", "q=evals/quiz.jsonl")
    assert again.exit_code == 0 and "already complete" in again.output, again.output
