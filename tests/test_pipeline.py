"""The executor: shards, manifest, resumption, refusal of mismatched reruns, summary."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from instructpt.errors import UsageError
from instructpt.records import Document, Reject
from instructpt.synthesis.format import CON_CLOSE, CON_OPEN, Pair, serialize_pairs
from instructpt.synthesis.rounds import RoundSettings
from instructpt.synthesis.stage import SynthesisConfig, iter_shards, run_synthesis, synthesize


def respond(prompt: str) -> str:
    doc = prompt[prompt.rfind(CON_OPEN) + 5 : prompt.rfind(CON_CLOSE)].strip()
    if "nopairs" in doc:
        return "nothing useful"
    return serialize_pairs([Pair(f"What does '{doc[:20]}' say?", doc[:30]), Pair("Is it short?", "Yes")])


def make_corpus(path, n=23, bad_every=5):
    lines = []
    for i in range(n):
        lines.append(
            json.dumps(
                {
                    "id": f"doc{i}",
                    "text": f"Document number {i} describes the rivers and lakes of region {i}"
                    + (" nopairs." if i % 7 == 3 else ".")
                    + f" Therefore, region {i} has plenty of water.",
                }
            )
        )
        if i % bad_every == 2:
            lines.append('{"broken json')
    path.write_text("\n".join(lines) + "\n")
    return path


def config(tmp_path, out="out", **kw):
    base = dict(
        inputs=[str(tmp_path / "corpus.jsonl")],
        output=str(tmp_path / out),
        model="test",
        engine="scripted",
        shard_size=5,
        rounds=RoundSettings(rounds=2),
    )
    base.update(kw)
    return SynthesisConfig(**base)


def run(cfg, scripted, **engine_kw):
    engines = []

    def make():
        engines.append(scripted(respond, **engine_kw))
        return engines[-1]

    return run_synthesis(cfg, make, progress=False, log=lambda m: None), engines


def snapshot(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.parent.name in ("data", "rejects") or p.name == "rejects.jsonl"
    }


def test_run_writes_shards_manifest_rejects_and_summary(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl")
    summary, _ = run(config(tmp_path), scripted)
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "data").iterdir()) == [f"part-0000{i}.parquet" for i in range(5)]
    table = pq.read_table(out / "data").to_pylist()
    assert [r["id"] for r in table] == [f"doc{i}" for i in range(23)]
    row = table[0]
    assert row["pairs"][0]["response"] == "Document number 0 describes th" and row["finish_reason"] == "stop"
    assert {"chain_id", "position", "round", "inherits", "prompt_tokens", "generated_tokens"} <= set(row)
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejects] == ["invalid_json"] * 5
    assert summary["documents"] == 23 and summary["rejected_inputs"] == 5
    assert summary["rejected_by_reason"] == {"invalid_json": 5}
    assert summary["entries_without_pairs"] == 3 and summary["pairs"] == 40
    assert summary["complete"] and json.loads((out / "manifest.json").read_text())["complete"]
    assert json.loads((out / "summary.json").read_text())["pairs"] == 40
    assert summary["this_run"]["documents_per_s"] > 0


def test_crash_and_resume_is_byte_identical_and_recomputes_nothing(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path, "clean"), scripted)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(config(tmp_path, "crashy"), scripted, fail_after_calls=5)  # dies in shard 2's 2nd round
    manifest = json.loads((tmp_path / "crashy" / "manifest.json").read_text())
    assert sorted(manifest["shards"]) == ["0", "1"] and not manifest["complete"]
    summary, engines = run(config(tmp_path, "crashy"), scripted)
    assert engines[0].calls == 3 * 2  # shards 2, 3, 4; two rounds each
    assert snapshot(tmp_path / "crashy") == snapshot(tmp_path / "clean")
    assert summary["documents"] == 23 and summary["this_run"]["documents"] == 13


def test_finished_run_is_not_redone_and_loads_no_engine(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)
    summary, engines = run(config(tmp_path), scripted)
    assert engines == [] and summary["documents"] == 23


def test_rerun_with_other_settings_is_refused_unless_overwrite(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)
    with pytest.raises(UsageError, match=r"other settings \(rounds: 2 -> 3\).*--rebuild"):
        run(config(tmp_path, rounds=RoundSettings(rounds=3)), scripted)
    summary, _ = run(config(tmp_path, rounds=RoundSettings(rounds=3), overwrite=True), scripted)
    assert summary["documents"] == 23


def test_foreign_folder_is_refused(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        run(config(tmp_path), scripted)


def test_strict_fails_on_first_bad_record(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl")
    with pytest.raises(UsageError, match=r"corpus.jsonl:4: invalid_json"):
        run(config(tmp_path, strict=True), scripted)


def test_jsonl_output_and_generations(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl", n=4)
    run(config(tmp_path, format="jsonl", rounds=RoundSettings(keep_generations=True)), scripted)
    rows = [json.loads(x) for x in (tmp_path / "out/data/part-00000.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and rows[0]["generation"].startswith("<QUE>")


def test_limit(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl")
    summary, _ = run(config(tmp_path, limit=7), scripted)
    assert summary["documents"] == 7


def test_iter_shards_keeps_trailing_rejects_with_last_shard():
    d = lambda i: Document(str(i), "t")  # noqa: E731
    r = Reject("s", "bad")
    shards = list(iter_shards([r, d(0), d(1), r, d(2), r, r], 2))
    assert [(len(ds), len(rs)) for ds, rs in shards] == [(2, 2), (1, 2)]
    assert list(iter_shards([r], 2)) == [([], [r])]


def test_python_api_accepts_strings_dicts_and_documents(scripted):
    engine = scripted(respond)
    entries = list(
        synthesize(
            ["Plain text.", {"id": "x", "text": "Dict text."}, Document("y", "Doc.")],
            engine,
            rounds=2,
            batch_size=2,
        )
    )
    assert [e.id for e in entries][1:] == ["x", "y"]
    assert entries[1].round == 1 and entries[2].chain_id == "00001-0"
    with pytest.raises(UsageError, match="no non-empty 'text'"):
        list(synthesize([{"id": 1}], engine))


def test_a_deleted_shard_of_a_finished_run_is_recomputed(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)
    before = snapshot(tmp_path / "out")
    (tmp_path / "out/data/part-00002.parquet").unlink()
    _, engines = run(config(tmp_path), scripted)
    assert engines[0].calls == 2  # one shard, two rounds
    assert snapshot(tmp_path / "out") == before
