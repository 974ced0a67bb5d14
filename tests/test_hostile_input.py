"""Hostile input: one bad record never costs another, huge documents stay linear, ids never collide.

The table below is the contract: each hostile line sits between two good lines of the same file,
and must become exactly one reject with the given reason while both good lines are read.
"""

from __future__ import annotations

import json
import re
import struct

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instructpt.cli import main
from instructpt.io.corpus import CorpusReader, read_corpus
from instructpt.records import Document, Reject, entry_id
from instructpt.synthesis.fitting import fit_documents, split_to_fit
from instructpt.synthesis.format import reading_material
from instructpt.synthesis.rounds import BatchResult, RoundSettings, synthesize_batch
from instructpt.tokenization import Tokenizer

from .test_pipeline import config, run

GOOD_BEFORE = b'{"id": "before", "text": "A good line before."}'
GOOD_AFTER = b'{"id": "after", "text": "A good line after."}'

HOSTILE_LINES = {
    "nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
    "nested object 100,000 deep": (
        b'{"text": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001,
        "invalid_json",
    ),
    "unclosed nesting 100,000 deep": (b"[" * 100_000, "invalid_json"),
    "5,000-digit integer": (b'{"text": "x", "n": ' + b"9" * 5000 + b"}", "invalid_json"),
    "5,000-digit integer id": (b'{"id": ' + b"1" * 5000 + b', "text": "x"}', "invalid_json"),
    "infinite float id": (b'{"id": 1e999, "text": "x"}', "bad_id"),
    "NaN id": (b'{"id": NaN, "text": "x"}', "bad_id"),
    "lone high surrogate in text": (b'{"id": "s", "text": "bad \\ud800 here"}', "invalid_unicode"),
    "lone low surrogate in text": (b'{"id": "s", "text": "bad \\udfff"}', "invalid_unicode"),
    "reversed surrogate pair": (b'{"id": "s", "text": "\\ude00\\ud83d"}', "invalid_unicode"),
    "lone surrogate in id": (b'{"id": "\\ud800", "text": "Fine text."}', "invalid_unicode"),
    "surrogate bytes (CESU-8)": (b'{"text": "\xed\xa0\x80"}', "invalid_utf8"),
    "non-UTF-8 byte": (b'{"text": "caf\xe9"}', "invalid_utf8"),
    "NUL bytes": (b"\x00\x00\x00", "invalid_json"),
    "a JSON string": (b'"just a string"', "not_an_object"),
    "text is a list": (b'{"text": ["a"]}', "text_not_string"),
}


def write_lines(path, *lines: bytes):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def split_items(items):
    docs = [i for i in items if isinstance(i, Document)]
    rejects = [i for i in items if isinstance(i, Reject)]
    return docs, rejects


@pytest.mark.parametrize("case", list(HOSTILE_LINES))
def test_each_hostile_line_is_one_reject_and_the_rest_of_the_file_is_read(tmp_path, case):
    line, reason = HOSTILE_LINES[case]
    path = write_lines(
        tmp_path / "in.jsonl", GOOD_BEFORE, line, GOOD_AFTER, line, GOOD_AFTER.replace(b"after", b"last")
    )
    docs, rejects = split_items(list(read_corpus([path])))
    assert [d.id for d in docs] == ["before", "after", "last"]
    assert [(r.source, r.reason) for r in rejects] == [(f"{path}:2", reason), (f"{path}:4", reason)]
    assert all("\n" not in r.detail and len(r.detail) < 500 for r in rejects)  # one line each


def test_valid_surrogate_pairs_are_fine(tmp_path):
    path = write_lines(tmp_path / "in.jsonl", b'{"id": "\\ud83d\\ude00", "text": "smile \\ud83d\\ude00"}')
    (doc,) = list(read_corpus([path]))
    assert doc.id == "\U0001f600" and doc.text == "smile \U0001f600"


def test_lone_surrogate_in_the_response_field_is_rejected(tmp_path):
    path = write_lines(
        tmp_path / "in.jsonl",
        b'{"question": "Q?", "response": "bad \\udc00"}',
        b'{"question": "Q2?", "response": "Fine."}',
    )
    items = list(CorpusReader([path], text_field="question", response_field="response"))
    assert [(type(i).__name__, getattr(i, "reason", None)) for i in items] == [
        ("Reject", "invalid_unicode"),
        ("Document", None),
    ]


def _parquet_with_raw_strings(path, values: list[bytes]):
    """A Parquet file whose string column holds exactly `values` (pyarrow would refuse bad UTF-8)."""
    offsets = [0]
    for v in values:
        offsets.append(offsets[-1] + len(v))
    buffers = [None, pa.py_buffer(struct.pack(f"<{len(offsets)}i", *offsets)), pa.py_buffer(b"".join(values))]
    text = pa.Array.from_buffers(pa.string(), len(values), buffers)
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(len(values))], "text": text}), path)
    return path


def test_bad_parquet_strings_are_rejected_row_by_row(tmp_path):
    path = _parquet_with_raw_strings(
        tmp_path / "in.parquet",
        [b"Good first.", b"bad \xff byte", b"cesu \xed\xa0\x80 surrogate", b"Good last."],
    )
    docs, rejects = split_items(list(read_corpus([path])))
    assert [d.text for d in docs] == ["Good first.", "Good last."]
    assert [(r.source, r.reason) for r in rejects] == [
        (f"{path}#row1", "invalid_utf8"),
        (f"{path}#row2", "invalid_utf8"),
    ]


def test_a_surrogate_in_a_parquet_string_is_rejected(tmp_path):
    table = pa.table({"id": ["a", "b"], "text": ["Good.", "Also good."]})
    pq.write_table(table, tmp_path / "in.parquet")
    reader = CorpusReader([tmp_path / "in.parquet"])
    assert isinstance(reader._document({"id": "x", "text": "bad \ud800"}, "src"), Reject)
    assert reader._document({"id": "x", "text": "bad \ud800"}, "src").reason == "invalid_unicode"
    assert reader._document({"id": "\udfff", "text": "ok"}, "src").reason == "invalid_unicode"


def test_max_doc_chars_rejects_the_record_and_reads_on(tmp_path):
    path = write_lines(
        tmp_path / "in.jsonl",
        b'{"id": "big", "text": "' + b"x" * 101 + b'"}',
        b'{"id": "ok", "text": "' + b"y" * 100 + b'"}',
    )
    items = list(CorpusReader([path], max_doc_chars=100))
    assert [(type(i).__name__, i.id, getattr(i, "reason", None)) for i in items] == [
        ("Reject", "big", "too_many_chars"),
        ("Document", "ok", None),
    ]
    assert [type(i).__name__ for i in CorpusReader([path], max_doc_chars=None)] == ["Document"] * 2


# --- fuzz: arbitrary bytes per line never cost a good line ---------------------------------------

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["id", "text", "x"]), inner, max_size=3)
    ),
    max_leaves=8,
)
_HOSTILE = st.one_of(
    st.binary(max_size=60),
    _JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["id", "text"]), _JSON_VALUES, max_size=2).map(
        lambda v: json.dumps(v).encode()
    ),
    st.integers(1, 3000).map(lambda n: b"[" * n * 40),
    st.integers(4301, 6000).map(lambda n: b'{"text": "t", "n": ' + b"7" * n + b"}"),
    st.sampled_from([b'{"text": "\\ud800"}', b'{"id": "\\udbff", "text": "t"}', b'{"text": "\xed\xa0\x80"}']),
    st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
).map(lambda b: b.replace(b"\n", b" "))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.text(min_size=1, max_size=30).filter(str.strip), _HOSTILE), max_size=12))
def test_fuzz_arbitrary_lines_never_lose_a_good_line(tmp_path, lines):
    raw: list[bytes] = []
    good: dict[int, str] = {}
    for k, line in enumerate(lines, 1):
        if isinstance(line, str):  # a good line
            raw.append(json.dumps({"id": f"good-{k}", "text": line}).encode())
            good[k] = line
        else:
            raw.append(line)
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"".join(r + b"\n" for r in raw))
    items = list(read_corpus([path]))
    assert not any(isinstance(i, Reject) and i.reason == "unreadable_file" for i in items)
    by_line: dict[int, list] = {}
    for item in items:
        by_line.setdefault(int(item.source.rsplit(":", 1)[1]), []).append(item)
    for k, text in good.items():
        (doc,) = by_line.pop(k)
        assert isinstance(doc, Document) and (doc.id, doc.text) == (f"good-{k}", text)
    for k, found in by_line.items():  # every other line: one document or exactly one reject
        assert len(found) == 1 and raw[k - 1].strip(), (k, raw[k - 1][:80], found)
    blank = {k for k, r in enumerate(raw, 1) if not r.strip()}
    assert set(by_line) == set(range(1, len(raw) + 1)) - set(good) - blank


# --- the CLI: --strict stops with one line; --max-doc-chars -----------------------------------------


@pytest.fixture
def tok_file(tmp_path, tokenizer):
    path = tmp_path / "tokenizer.json"
    tokenizer.backend.save(str(path))
    return path


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, terminal_width=200)


def test_cli_surrogate_is_a_reject_and_with_strict_a_one_line_error(tmp_path, tok_file):
    path = write_lines(tmp_path / "in.jsonl", GOOD_BEFORE, b'{"id": "s", "text": "bad \\ud800"}', GOOD_AFTER)
    result = invoke(
        "synthesize", path, "-o", tmp_path / "out", "--engine", "rules", "--model", tok_file, "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["documents"] == 2 and summary["rejected_by_reason"] == {"invalid_unicode": 1}
    strict = invoke(
        "synthesize", path, "-o", tmp_path / "strict", "--engine", "rules", "--model", tok_file, "--strict"
    )
    assert strict.exit_code == 1
    message = strict.output.strip()
    assert "\n" not in message and "Traceback" not in message
    assert f"{path}:2" in message and "invalid_unicode" in message


def test_cli_max_doc_chars(tmp_path, tok_file):
    path = write_lines(
        tmp_path / "in.jsonl",
        json.dumps({"id": "huge", "text": "word " * 2000}).encode(),
        GOOD_AFTER,
    )
    common = ("synthesize", path, "--engine", "rules", "--model", tok_file, "--json")
    result = invoke(*common, "-o", tmp_path / "out", "--max-doc-chars", "1000")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["documents"] == 1 and summary["rejected_by_reason"] == {"too_many_chars": 1}
    rejects = [json.loads(x) for x in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert [(r["id"], r["reason"]) for r in rejects] == [("huge", "too_many_chars")]
    assert "--max-doc-chars" in invoke("synthesize", "--help").output
    strict = invoke(*common, "-o", tmp_path / "strict", "--max-doc-chars", "1000", "--strict")
    assert strict.exit_code == 1 and f"{path}:1" in strict.output and "too_many_chars" in strict.output
    unlimited = invoke(*common, "-o", tmp_path / "unlimited", "--max-doc-chars", "0")
    assert json.loads(unlimited.stdout)["documents"] == 2
    bad = invoke(*common, "-o", tmp_path / "bad", "--max-doc-chars", "-5")
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_run_config_has_max_doc_chars(tmp_path):
    from instructpt.config import load_config
    from instructpt.errors import UsageError

    path = tmp_path / "run.yaml"
    path.write_text("workdir: w\nsynthesize:\n  inputs: [a.jsonl]\n  max_doc_chars: 1234\n")
    assert load_config(path).synthesize.max_doc_chars == 1234
    with pytest.raises(UsageError, match="max_doc_chars"):
        load_config(path, ["synthesize.max_doc_chars=-1"])


# --- long documents: linear work, bounded windows, same pieces as before ----------------------------


class CountingTokenizer(Tokenizer):
    """Counts the characters it is asked to encode and fails as soon as they pass `limit`."""

    def __init__(self, backend, limit: float = float("inf"), offsets: bool = True) -> None:
        super().__init__(backend, name="counting")
        inner = self._encode_batch
        self.chars = 0
        self.largest = 0
        self.limit = limit
        self.offsets = offsets

        def encode_batch(texts):
            for t in texts:
                self._charge(len(t))
            return inner(texts)

        self._encode_batch = encode_batch

    def _charge(self, n: int) -> None:
        self.chars += n
        self.largest = max(self.largest, n)
        if self.chars > self.limit:
            raise AssertionError(f"tokenized {self.chars:,} characters, more than the limit {self.limit:,}")

    def char_offsets(self, text):
        if not self.offsets:
            return None
        self._charge(len(text))
        return super().char_offsets(text)


def long_text(n_chars: int) -> str:
    para = "Rivers and lakes hold water. The museum opens at nine! Do kettles boil? Yes, they do"
    out, k = [], 0
    while sum(map(len, out)) < n_chars:
        out.append(f"Paragraph {k}: " + " ".join([para] * (1 + k % 4)) + ("\n\n" if k % 3 else "\n"))
        k += 1
    return "".join(out)[:n_chars]


@pytest.mark.parametrize("offsets", [True, False])
def test_splitting_a_huge_document_tokenizes_linearly(tokenizer, offsets):
    text = long_text(2_000_000)
    budget = 300
    # With offsets: the text once as a stream of chunks, a short probe and the emitted piece on
    # its own (about 2.25 characters per character here; 3.4-5 before the stream). Without: a
    # binary search over a window twice the piece, ~log2(window) encodes of at most the window.
    factor = 2.5 if offsets else 60
    tok = CountingTokenizer(tokenizer.backend, limit=factor * len(text), offsets=offsets)
    result = BatchResult(entries=[])
    fitted = fit_documents([Document("big", text)], tok, budget, "split", result)
    assert result.counts["long_docs_split"] == 1 and len(fitted) > 100
    assert all(len(ids) <= budget for _, ids in fitted)
    assert tok.largest < 100_000  # windows, never the document
    assert " ".join(d.text for d, _ in fitted).split() == text.split()


@pytest.mark.parametrize("mode", ["truncate", "skip"])
def test_truncate_and_skip_never_tokenize_the_whole_document(tokenizer, mode):
    text = long_text(2_000_000)
    tok = CountingTokenizer(tokenizer.backend, limit=len(text) // 20)
    result = BatchResult(entries=[])
    fitted = fit_documents([Document("big", text), Document("small", "Short.")], tok, 300, mode, result)
    assert [d.id for d, _ in fitted] == (["big", "small"] if mode == "truncate" else ["small"])
    if mode == "skip":
        assert [(r.id, r.reason) for r in result.rejects] == [("big", "too_long")]
    else:
        assert fitted[0][0].truncated and text.startswith(fitted[0][0].text) and len(fitted[0][1]) <= 300


def reference_split_to_fit(text, tokenizer, budget, first_only=False):
    """split_to_fit as it was before windows (quadratic), to pin its output."""
    from instructpt.synthesis.format import CON_CLOSE

    paragraph, line, sentence, space = (re.compile(p) for p in (r"\n\s*\n", r"\n", r"(?<=[.!?])\s+", r"\s+"))

    def fits(piece):
        return len(tokenizer.encode(reading_material(piece))) <= budget

    def longest(rest):
        lo, hi = 0, len(rest)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(rest[:mid]) else (lo, mid - 1)
        return lo

    pieces = []
    rest = text.strip()
    lead = len(reading_material("")) - len(f" {CON_CLOSE}\n\n")
    overhead = len(tokenizer.encode(reading_material("")))
    while rest:
        offsets = tokenizer.char_offsets(reading_material(rest))
        if offsets is None:
            if fits(rest):
                pieces.append(rest)
                break
            lo = longest(rest)
        else:
            if len(offsets) <= budget:
                pieces.append(rest)
                break
            lo = min(len(rest), max(1, offsets[max(0, budget - overhead - 2)][0] - lead))
            while lo > 1 and not fits(rest[:lo]):
                lo = max(1, lo - max(1, lo // 50))
            if not fits(rest[:lo]):
                lo = 0
        assert lo
        cut = lo
        for pattern in (paragraph, line, sentence, space):
            ends = [m.start() for m in pattern.finditer(rest, lo // 2, lo)]
            if ends and rest[: ends[-1]].strip() and fits(rest[: ends[-1]]):
                cut = ends[-1]
                break
        pieces.append(rest[:cut].strip())
        if first_only:
            break
        rest = rest[cut:].strip()
    return [p for p in pieces if p]


@pytest.mark.parametrize("offsets", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_windowed_split_gives_the_same_pieces_as_before(tokenizer, offsets, seed):
    import random

    rng = random.Random(seed)
    words = ["water", "lake", "é", "museum.", "boils!", "x" * 30, "\n", "\n\n", "  ", "Kettle?", "9"]
    text = " ".join(rng.choice(words) for _ in range(rng.randint(500, 3000)))
    tok = tokenizer if offsets else CountingTokenizer(tokenizer.backend, offsets=False)
    for budget in (40, 120, 333):
        for first_only in (False, True):
            expected = reference_split_to_fit(text, tok, budget, first_only)
            assert split_to_fit(text, tok, budget, first_only) == expected, (budget, first_only)


# --- ids: a part's id can never equal another entry's id --------------------------------------------


def test_part_ids_never_collide_with_document_ids(scripted):
    long = " ".join(f"Sentence {i} about rivers and lakes." for i in range(80))
    docs = [
        Document("x", long),
        Document("x#0", "Short."),
        Document("x#1#", "Other."),
        Document("y#", "Third."),
    ]
    engine = scripted(lambda p: "<QUE> q <ANS> a </END>", max_model_len=200)
    result = synthesize_batch(docs, engine, RoundSettings(rounds=1, max_new_tokens=60))
    ids = [e.id for e in result.entries]
    parts = [e for e in result.entries if e.doc_id == "x"]
    assert len(parts) > 1 and [e.id for e in parts] == [f"x#{k}" for k in range(len(parts))]
    assert len(set(ids)) == len(ids)
    whole = {e.doc_id: e.id for e in result.entries if e.n_parts == 1}
    assert whole == {"x#0": "x#0#", "x#1#": "x#1##", "y#": "y#"}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="x#01", min_size=1, max_size=6), unique=True, max_size=8), st.data())
def test_entry_id_is_injective(doc_ids, data):
    made: dict[str, tuple[str, int | None]] = {}
    for doc_id in doc_ids:
        n_parts = data.draw(st.integers(1, 12))
        keys = [None] if n_parts == 1 else list(range(n_parts))
        for part in keys:
            eid = entry_id(doc_id, part)
            assert eid not in made, (eid, made[eid], (doc_id, part))
            made[eid] = (doc_id, part)
    for doc_id in ("x", "x#", "page#section", "a#b"):
        assert entry_id(doc_id, None) == doc_id  # ids that cannot look like parts are kept


# --- summary: skipped files named, every reject counted ---------------------------------------------


def test_skipped_files_are_named_in_a_warning_and_the_summary(tmp_path, scripted):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text(json.dumps({"id": "a", "text": "Alpha text here."}) + "\n")
    for name in ("table.csv", "table.tsv", "README"):
        (folder / name).write_text("x\n")
    logs: list[str] = []
    from instructpt.synthesis.stage import run_synthesis

    summary = run_synthesis(
        config(tmp_path, inputs=[str(folder)]), lambda: scripted(lambda p: "<QUE> q <ANS> a </END>"),
        progress=False, log=logs.append,
    )  # fmt: skip
    expected = [str(folder / n) for n in ("README", "table.csv", "table.tsv")]
    assert summary["skipped_files"] == expected
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["skipped_files"] == expected
    assert any("warning" in m and "table.csv" in m and "README" in m for m in logs), logs


def test_rejected_inputs_counts_too_long_documents(tmp_path, scripted):
    rows = [{"id": "long", "text": " ".join(["Rivers and lakes."] * 400)}, {"id": "ok", "text": "Fine."}]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    cfg = config(tmp_path, rounds=RoundSettings(rounds=1, max_new_tokens=60, long_docs="skip"))
    summary, _ = run(cfg, scripted, max_model_len=200)
    assert summary["rejected_by_reason"] == {"invalid_json": 1, "too_long": 1}
    assert summary["rejected_inputs"] == 2
    rejects = [json.loads(x)["reason"] for x in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert sorted(rejects) == ["invalid_json", "too_long"]
