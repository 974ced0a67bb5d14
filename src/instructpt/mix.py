"""Mix, tokenize and pack the pre-training corpus (SPEC §5).

Three passes, memory bounded by a batch plus a few numbers per document:

1. **Tokenize** every source once: each text is wrapped in the target model's BOS/EOS *as
   text* and tokenized without adding special tokens (SPEC §5), batched, in worker
   processes. Each input file is one executor shard (mix_stage.py): its token ids, lengths,
   ids and texts go to scratch files in out/.work/tokens with a completion marker, so a
   crash, static workers or Ray redo no finished file. Plan, shuffle and write run once
   every shard is done.
2. **Plan**: every source with a weight gets `tokens(anchor) * weight / weight(anchor)`
   tokens, the anchor being the first weighted source (kept whole, exactly once). A source
   with fewer tokens than that is repeated (whole passes) and topped up with a seeded random
   subset of its documents; one with more is down-sampled to a seeded random subset. The
   subset stops at the document whose cumulative tokens land closest to the target, so the
   achieved ratio is off by at most half a document (< 0.1% at 1M tokens of 600-token
   documents). Sources without a weight are kept whole. Then all chosen documents are
   shuffled together with the seed.
3. **Write** in that order: text shards, a Hugging Face dataset, or tokenized shards
   (Megatron `.bin/.idx`, OLMo `.npy` + `.csv.gz`; see token_formats.py).

Packing (`--pack`, hf and megatron): documents are concatenated in shuffled order into one
stream, cut into rows of exactly `seq_len` tokens; a document that crosses a row boundary
continues in the next row, and each row records where documents start in it. The final
partial row is dropped (its token count is in the manifest), so packing costs at most
seq_len - 1 tokens of the whole corpus and no padding.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import sys
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from .corpus import CorpusReader, expand_inputs, file_size
from .errors import SettingsChanged, UsageError
from .executor import check_worker, execute, lock_name
from .output import (
    MANIFEST,
    NO_SPACE,
    SCRATCH_DIR,
    DamagedData,
    DiskFull,
    OutputDir,
    check_inputs,
    check_run,
    commit_file,
    disk_full,
    make_folder,
    marker_files,
    safe_name,
    write_atomic,
    write_json,
)
from .records import Document, Reject
from .token_formats import token_dtype, write_megatron, write_olmo

MIX_FORMATS = ("parquet", "jsonl", "hf", "megatron", "olmo")
PACKABLE = ("hf", "megatron")
OPENORCA_FIELDS = ("question", "response")  # its system_prompt column is dropped


@dataclass
class SourceSpec:
    """One input of a mix."""

    name: str
    paths: list[str]
    weight: float | None = None  # token-ratio weight; None: every document exactly once
    text_field: str = "text"
    response_field: str | None = None  # instruction data: text = question + " " + response
    id_field: str = "id"

    def __post_init__(self) -> None:
        """Recipes are user text: the name becomes part of file names (output.SAFE_NAME), and
        a wrong type is a one-line error here rather than a traceback later."""
        safe_name(self.name, "source name")
        if not (isinstance(self.paths, list) and self.paths and all(isinstance(p, str) for p in self.paths)):
            raise UsageError(f"source {self.name!r}: paths must be a non-empty list of file or folder names")
        w = self.weight
        if w is not None and (isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w)
                              or w <= 0):  # fmt: skip
            raise UsageError(f"source {self.name!r}: weight must be a positive number, got {w!r}")
        for key in ("text_field", "id_field", "response_field"):
            value = getattr(self, key)
            if not isinstance(value, str) and not (key == "response_field" and value is None):
                raise UsageError(f"source {self.name!r}: {key} must be a string, got {value!r}")


@dataclass
class MixConfig:
    sources: list[SourceSpec]
    output: str
    tokenizer: str
    recipe: str = "custom"
    format: str = "parquet"
    seq_len: int = 4096
    pack: bool = False
    seed: int = 0
    upsample: bool = True
    workers: int = 0  # 0: one per CPU core
    shard_tokens: int = 100_000_000
    bos_text: str | None = None  # default: the tokenizer's BOS token
    eos_text: str | None = None  # default: the tokenizer's EOS token
    overwrite: bool = False
    verify: bool = False  # hash every raw input (instructpt folders' shards are always hashed)
    rebuild: bool = False  # recompute a finished mix whose inputs changed, instead of refusing
    allow_partial: bool = False  # mix the intact shards of unfinished/damaged runs, saying what is left out


def scratch_recipe(
    augmented: Sequence[str], raw: Sequence[str], text_field: str = "text"
) -> list[SourceSpec]:
    """Pre-training from scratch: instruction-augmented texts + the unchanged raw texts."""
    return [SourceSpec("augmented", list(augmented)), SourceSpec("raw", list(raw), text_field=text_field)]


def domain_recipe(
    augmented: Sequence[str], general: Sequence[str], ratio: str = "1:1",
    question_field: str = OPENORCA_FIELDS[0], response_field: str = OPENORCA_FIELDS[1],
) -> list[SourceSpec]:  # fmt: skip
    """Domain-adaptive: augmented texts and general instructions, `ratio` in target tokens."""
    a, g = parse_ratio(ratio)
    return [
        SourceSpec("augmented", list(augmented), weight=a),
        SourceSpec(
            "general", list(general), weight=g, text_field=question_field, response_field=response_field
        ),
    ]


def parse_ratio(ratio: str) -> tuple[float, float]:
    try:
        a, g = (float(x) for x in ratio.split(":"))
    except ValueError:
        raise UsageError(f"--ratio must look like 1:1 or 2:1, got {ratio!r}") from None
    if a <= 0 or g <= 0:
        raise UsageError(f"--ratio parts must be positive, got {ratio!r}")
    return a, g


def load_recipe(path: str | Path) -> list[SourceSpec]:
    """A custom recipe: {"sources": [{"name", "paths", "weight"?, "text_field"?, ...}]}."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"recipe file not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read the recipe {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 text (byte {exc.start}); save the recipe as UTF-8") from None
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
        sources = [SourceSpec(**s) for s in data["sources"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path} is not a valid recipe ({exc}); see README 'Custom recipes'") from None
    if not sources:
        raise UsageError(f"{path} lists no sources")
    return sources


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object_pairs_hook: a key given twice is an error (json.loads keeps the last)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


# -- tokenization -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetTokenizer:
    """The trained model's tokenizer as `tokenizers` JSON (cheap to ship to workers)."""

    name: str
    json: str
    bos_text: str
    eos_text: str
    vocab_size: int

    @classmethod
    def load(cls, source: str, bos_text: str | None = None, eos_text: str | None = None) -> TargetTokenizer:
        from .tokenization import load_tokenizer

        backend = load_tokenizer(source).backend
        rust = getattr(backend, "backend_tokenizer", backend)
        if not hasattr(rust, "to_str"):
            raise UsageError(f"{source}: mix needs a Hugging Face `tokenizers`-based (fast) tokenizer")
        bos = bos_text if bos_text is not None else (getattr(backend, "bos_token", None) or "")
        eos = eos_text if eos_text is not None else getattr(backend, "eos_token", None)
        if not eos:
            raise UsageError(f"{source} names no EOS token; pass --eos-text (and --bos-text)")
        # The largest id + 1, not the number of entries: special ids can sit far above the rest.
        vocab = max(rust.get_vocab(with_added_tokens=True).values()) + 1
        return cls(str(source), rust.to_str(), bos, eos, vocab)

    def wrap(self, text: str) -> str:
        return f"{self.bos_text}{text}{self.eos_text}"


_worker_tokenizer: Any = None


def _init_worker(tokenizer_json: str) -> None:
    global _worker_tokenizer
    from tokenizers import Tokenizer

    _worker_tokenizer = Tokenizer.from_str(tokenizer_json)


def _init_pool_worker(tokenizer_json: str, parent: int) -> None:
    _die_with_parent(parent)
    _init_worker(tokenizer_json)


def _die_with_parent(parent: int) -> None:
    """End this pool worker as soon as the mix process `parent` ends, even when that one was
    killed with SIGKILL in the middle of a batch (a worker left alone would finish its batch,
    minutes of CPU for long documents). Linux: the kernel sends SIGKILL (PR_SET_PDEATHSIG; the
    pool is created and closed by one thread, which the signal follows). Elsewhere: a thread
    polls the parent pid."""
    import signal
    import threading
    import time

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0) == 0:  # PR_SET_PDEATHSIG
                if os.getppid() != parent:  # the parent died before prctl took effect
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _encode(texts: list[str]) -> tuple[bytes, bytes]:
    """Token ids (uint32, back to back) and lengths (uint32) of `texts`, no special tokens added."""
    encodings = _worker_tokenizer.encode_batch(texts, add_special_tokens=False)
    lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.uint32, count=len(encodings))
    flat = np.fromiter((i for e in encodings for i in e.ids), dtype=np.uint32, count=int(lengths.sum()))
    return flat.tobytes(), lengths.tobytes()


class Encoder:
    """Batched tokenization in `workers` processes (in-process with Rust threads if 1)."""

    def __init__(self, tokenizer: TargetTokenizer, workers: int) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.pool = None
        if self.workers > 1:
            ctx = multiprocessing.get_context("spawn")  # fork after Rust threads ran can deadlock
            env = {"RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)  # inherited by the spawned workers
            try:
                self.pool = ctx.Pool(self.workers, _init_pool_worker, (tokenizer.json, os.getpid()))
            finally:
                for k, v in saved.items():
                    os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        else:
            _init_worker(tokenizer.json)

    def map(self, batches: Iterator[list[str]]) -> Iterator[tuple[bytes, bytes]]:
        if self.pool is None:
            return map(_encode, batches)
        return self.pool.imap(_encode, batches, chunksize=1)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


# -- scratch store ---------------------------------------------------------------------------


def _write_to(handle: IO[Any], data: bytes | str, path: Path) -> None:
    """handle.write(data); a full disk is a one-line UsageError naming `path` (mix's scratch and
    rejects files are streamed, not written with write_atomic; run_mix removes them)."""
    try:
        handle.write(data)
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise disk_full(path, len(data)) from None
        raise


class _BlobWriter:
    """Append-only strings streamed to a file, with their offsets."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = open(path, "wb")
        self.offsets = array("Q", [0])

    def append(self, text: str) -> None:
        raw = text.encode("utf-8")
        _write_to(self.handle, raw, self.path)
        self.offsets.append(self.offsets[-1] + len(raw))


class _Parts:
    """Documents stored shard by shard: maps a document index of the whole source to its part."""

    def __init__(self, first_docs: Sequence[int]) -> None:
        self.first = np.asarray(first_docs, dtype=np.int64)  # index of each part's first document

    def locate(self, i: int) -> tuple[int, int]:
        p = int(np.searchsorted(self.first, i, side="right")) - 1
        return p, i - int(self.first[p])


class _Blobs(_Parts):
    """Strings read back by document index from per-shard blob files + offsets."""

    def __init__(self, first_docs: Sequence[int], parts: list[tuple[np.memmap | None, np.ndarray]]) -> None:
        super().__init__(first_docs)
        self.parts = parts

    def __getitem__(self, i: int) -> str:
        p, j = self.locate(i)
        data, offsets = self.parts[p]
        start, end = int(offsets[j]), int(offsets[j + 1])
        return bytes(data[start:end]).decode("utf-8") if end > start and data is not None else ""


@dataclass
class SourceData:
    spec: SourceSpec
    tokens_path: Path | None = None
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint32))
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    ids: _Blobs | None = None
    texts: _Blobs | None = None
    rejects: dict[str, int] = field(default_factory=dict)
    tokens: list[np.memmap | None] = field(default_factory=list)  # per tokenized shard
    parts: _Parts = field(default_factory=lambda: _Parts([0]))

    def doc_tokens(self, i: int) -> np.ndarray:
        p, _ = self.parts.locate(i)
        tokens = self.tokens[p]
        assert tokens is not None
        base = int(self.offsets[self.parts.first[p]])
        return tokens[int(self.offsets[i]) - base : int(self.offsets[i + 1]) - base]


def source_files(path: str, full: bool = False, allow_partial: bool = False,
                 log: Callable[[str], None] | None = None) -> list:  # fmt: skip
    """Files of a source: a templify/synthesize output folder means the data shards its markers
    record, each checked (size + mtime, or hashed with `full`); an unfinished or damaged folder
    is refused unless `allow_partial` (then its intact shards, and a note to `log`)."""
    folder = Path(path)
    if "://" in str(path) or not folder.is_dir() or not (folder / MANIFEST).is_file():
        return expand_inputs([path])
    check = check_run(folder, full)
    if check.manifest is None:
        raise UsageError(f"{folder / MANIFEST} is unreadable; rerun the command that wrote {folder}")
    if not check.good and not check.damaged and (folder / "data").is_dir() and check.manifest.get("complete"):
        return expand_inputs([folder / "data"])  # a run of ours that records no shards
    if not check.complete:
        n = check.shard_count if check.shard_count is not None else "?"
        what = f"{len(check.good)} of {n} shards intact"
        if check.damaged or check.missing:
            what += f"; {check.problems()}"
        if not allow_partial:
            state = "has damaged shards" if check.damaged else "is not finished"
            raise DamagedData(f"the run in {folder} {state} ({what}): rerun the command that wrote it, "
                              "or pass --allow-partial to mix the intact shards")  # fmt: skip
        if log is not None:
            log(f"warning: --allow-partial: {folder} is incomplete ({what}); mixing its intact shards only")
    return [folder / marker["file"] for _, marker in sorted(check.good.items())]


def _run_digest(path: str) -> str | None:
    """For an instructpt output folder: a hash of its intact shards' recorded sha256s."""
    folder = Path(path)
    if "://" in str(path) or not (folder / MANIFEST).is_file():
        return None
    check = check_run(folder)
    shas = [sorted((k, r.get("sha256")) for k, r in marker_files(m).items())
            for _, m in sorted(check.good.items())]  # fmt: skip
    return _hash(json.dumps(shas))


TOKENS = f"{SCRATCH_DIR}/tokens"  # tokenized shards: part-00000.{tokens,lengths,ids,ids.idx,...}


def tokenize_shard(spec: SourceSpec, path: Any, checked: bool, encoder: Encoder, tokenizer: TargetTokenizer,
                   out: OutputDir, index: int, keep_texts: bool, batch_docs: int = 512
                   ) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:  # fmt: skip
    """Tokenize one input file of `spec` into out/.work/tokens/part-<index>.*; returns the files'
    records and counts (documents, tokens, rejected.<reason>). `checked`: the file is a shard of
    one of our runs, so an unreadable one is damage, not a reject."""
    reader = CorpusReader([path], spec.text_field, spec.id_field, spec.response_field,
                          reject_duplicate_ids=False)  # fmt: skip
    folder = out.root / TOKENS
    make_folder(folder)
    final = {name: folder / f"part-{index:05d}.{name}" for name in
             ("tokens", "lengths", "ids", "ids.idx", "texts", "texts.idx", "rejects.jsonl")}  # fmt: skip
    tmp = {name: p.with_name(f".{p.name}.{os.getpid()}.tmp") for name, p in final.items()}
    ids = _BlobWriter(tmp["ids"])
    texts = _BlobWriter(tmp["texts"]) if keep_texts else None
    rejects_log = open(tmp["rejects.jsonl"], "w")
    counts: dict[str, int] = {}
    lengths = array("I")

    def batches() -> Iterator[list[str]]:
        batch: list[str] = []
        for item in reader:
            if isinstance(item, Reject):
                if item.reason == "unreadable_file" and checked:
                    raise DamagedData(f"{item.source} cannot be read ({item.detail}); rerun the command "
                                      "that wrote it")  # fmt: skip
                counts[f"rejected.{item.reason}"] = counts.get(f"rejected.{item.reason}", 0) + 1
                line = json.dumps({**item.to_dict(), "source_name": spec.name}) + "\n"
                _write_to(rejects_log, line, final["rejects.jsonl"])
                continue
            assert isinstance(item, Document)
            ids.append(item.id)
            if texts is not None:
                texts.append(item.text)
            batch.append(tokenizer.wrap(item.text))
            if len(batch) == batch_docs:
                yield batch
                batch = []
        if batch:
            yield batch

    try:
        with open(tmp["tokens"], "wb") as handle:
            for flat, lens in encoder.map(batches()):
                _write_to(handle, flat, final["tokens"])
                lengths.frombytes(lens)
        for blob in (ids, texts):
            if blob is not None:
                blob.handle.close()
        rejects_log.close()
        extra = {"lengths": lengths.tobytes(), "ids.idx": ids.offsets.tobytes()}
        if texts is not None:
            extra["texts.idx"] = texts.offsets.tobytes()
        for name, data in extra.items():
            with open(tmp[name], "wb") as handle:
                _write_to(handle, data, final[name])
        n = len(lengths)
        rows = {"tokens": int(sum(lengths)), "lengths": n, "ids": n, "ids.idx": n + 1, "texts": n,
                "texts.idx": n + 1, "rejects.jsonl": sum(counts.values())}  # fmt: skip
        names = [k for k in final if (k not in ("texts", "texts.idx") or keep_texts)]
        files = dict(commit_file(out.root, tmp[k], final[k], rows[k]) for k in names)
    finally:
        rejects_log.close()
        for blob in (ids, texts):
            if blob is not None:
                blob.handle.close()
        for t in tmp.values():
            t.unlink(missing_ok=True)
    return files, {"documents": len(lengths), "tokens": rows["tokens"], **counts}


# -- planning ---------------------------------------------------------------------------------


@dataclass
class SourcePlan:
    name: str
    documents_available: int
    tokens_available: int
    weight: float | None
    target_tokens: int
    selected: np.ndarray  # document indices, repeats included

    def tokens_selected(self, lengths: np.ndarray) -> int:
        return int(lengths[self.selected].sum(dtype=np.int64))


def plan_source(lengths: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """Document indices whose tokens sum closest to `target`: whole passes, then a random subset."""
    total = int(lengths.sum(dtype=np.int64))
    if total == 0 or target <= 0:
        return np.zeros(0, dtype=np.int64)
    passes, remainder = divmod(target, total)
    if passes > MAX_UPSAMPLE:
        raise UsageError(f"a target of {target:,} tokens repeats {total:,} tokens {passes:,} times, "
                         f"above the limit {MAX_UPSAMPLE}x")  # fmt: skip
    order = rng.permutation(len(lengths))
    cumulative = np.cumsum(lengths[order], dtype=np.int64)
    k = int(np.searchsorted(cumulative, remainder))  # first k+1 docs reach the remainder
    below = int(cumulative[k - 1]) if k else 0  # tokens of the first k docs
    if k < len(order) and abs(int(cumulative[k]) - remainder) <= abs(below - remainder):
        k += 1  # include the crossing document when that lands closer (none for remainder 0)
    whole = np.tile(np.arange(len(lengths), dtype=np.int64), passes)
    return np.concatenate([whole, order[:k].astype(np.int64)])


# A source is repeated at most this many times to meet its weight: the plan holds one index
# per selected document (and the shuffle three arrays of them), so an unbounded factor from a
# mistyped weight would allocate without limit. Documented in the README (Custom recipes).
MAX_UPSAMPLE = 100


def plan(data: list[SourceData], seed: int, upsample: bool) -> list[SourcePlan]:
    totals = [int(d.lengths.sum(dtype=np.int64)) for d in data]
    weighted = [i for i, d in enumerate(data) if d.spec.weight is not None]
    anchor = weighted[0] if weighted else None
    plans = []
    for i, d in enumerate(data):
        if not len(d.lengths):
            raise UsageError(f"source {d.spec.name!r} has no usable documents ({_rejects(d)})")
        if d.spec.weight is None or i == anchor:
            target = totals[i]
            selected = np.arange(len(d.lengths), dtype=np.int64)
        else:
            factor = totals[anchor] * d.spec.weight / data[anchor].spec.weight / totals[i]
            if factor > 1 and not upsample:
                raise UsageError(
                    f"source {d.spec.name!r} has {totals[i]:,} tokens but the ratio needs "
                    f"{round(factor * totals[i]):,}: it would be repeated {factor:.2f}x; add data, "
                    "lower its weight, or drop --no-upsample"
                )
            if not factor <= MAX_UPSAMPLE:  # also inf and nan from extreme weights
                raise UsageError(
                    f"source {d.spec.name!r} would be repeated {factor:,.2f}x to meet its weight "
                    f"{d.spec.weight:g} (anchor {data[anchor].spec.name!r}: {data[anchor].spec.weight:g}); "
                    f"the limit {MAX_UPSAMPLE}x keeps the plan in memory: lower its weight or add data"
                )
            target = round(totals[anchor] * d.spec.weight / data[anchor].spec.weight)
            selected = plan_source(d.lengths, target, np.random.default_rng([seed, i]))
        plans.append(SourcePlan(d.spec.name, len(d.lengths), totals[i], d.spec.weight, target, selected))
    return plans


def _rejects(d: SourceData) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(d.rejects.items())) or "no input records"


# -- writing ----------------------------------------------------------------------------------


def pack(docs: Iterator[np.ndarray], seq_len: int, carry: np.ndarray | None = None
         ) -> Iterator[tuple[np.ndarray, list[int]]]:  # fmt: skip
    """Rows of exactly `seq_len` ids from consecutive documents, each with the offsets where a
    document starts in it. The final partial row is not yielded (see the module docstring)."""
    buffer: list[np.ndarray] = []
    starts: list[int] = []
    filled = 0
    for doc in docs:
        pos = 0
        while pos < len(doc):
            if pos == 0:
                starts.append(filled)
            take = min(seq_len - filled, len(doc) - pos)
            buffer.append(doc[pos : pos + take])
            filled += take
            pos += take
            if filled == seq_len:
                yield np.concatenate(buffer), starts
                buffer, starts, filled = [], [], 0


def run_mix(
    config: MixConfig,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
    num_workers: int = 1,
    worker_index: int = 0,
    executor: str = "local",
    ray_workers: int | None = None,
) -> dict[str, Any]:
    """Build the training corpus described by `config` in `config.output`; returns the manifest.

    Each input file of each source is tokenized as one executor shard (out/.work/tokens, with a
    completion marker), so a crash, or static workers (`num_workers`/`worker_index`), or Ray
    (`executor="ray"`) redo nothing finished; when every shard is done the plan, shuffle and
    write run once, from the shards, to the same bytes as an uninterrupted run."""
    if config.format not in MIX_FORMATS:
        raise UsageError(f"unknown --format {config.format!r}; choose one of {', '.join(MIX_FORMATS)}")
    if config.pack and config.format not in PACKABLE:
        raise UsageError(
            f"--pack applies to {' and '.join(PACKABLE)}; {config.format} output is per document"
        )
    if config.seq_len < 1 or config.shard_tokens < 1:
        raise UsageError("--seq-len and --shard-tokens must be positive")
    check_worker(num_workers, worker_index)
    names = [s.name for s in config.sources]
    if len(set(names)) != len(names):
        raise UsageError(f"source names must be unique, got {names}")
    for spec in config.sources:
        if spec.weight is not None and spec.weight <= 0:
            raise UsageError(f"source {spec.name!r}: weight must be positive")
    # Fails early, with the path, if an input is missing, empty, unfinished or damaged.
    inputs = {p: source_files(p, False, config.allow_partial, log) for s in config.sources for p in s.paths}
    tokenizer = TargetTokenizer.load(config.tokenizer, config.bos_text, config.eos_text)
    settings = mix_settings(config, tokenizer)
    out = OutputDir(config.output, config.format)
    with out.locked(lock_name(num_workers, worker_index)):
        try:
            manifest = out.open_run(settings, config.overwrite, "mix")
        except SettingsChanged:
            if not config.rebuild:
                raise
            manifest = out.open_run(settings, overwrite=True, stage="mix")
        runs = {p: d for p in inputs if (d := _run_digest(p)) is not None}
        raw = [f for p, files in inputs.items() if p not in runs for f in files]
        manifest = check_inputs(out, manifest, raw, settings, config.verify, config.rebuild)
        before = manifest.get("input_runs", {}) if manifest.get("complete") else {}
        changed = [p for p, d in runs.items() if before.get(p, d) != d]
        if changed and not config.rebuild:
            raise SettingsChanged(f"input {changed[0]} changed since {out.root} was written; pass --rebuild "
                                  "to recompute the mix, or --overwrite", str(out.root),
                                  f"input {changed[0]}")  # fmt: skip
        if changed:
            manifest = out.open_run(settings, overwrite=True, stage="mix")
        if manifest.get("complete"):
            log(f"{out.root}: mix already complete, nothing to do")
            return manifest
        # Mixing reads every shard of our runs: hash them all now (cheap next to tokenizing).
        inputs = {p: source_files(p, True, config.allow_partial) if p in runs else files
                  for p, files in inputs.items()}  # fmt: skip
        manifest["input_runs"] = runs
    from .mix_stage import MixStage

    stage = MixStage(config, tokenizer, out, manifest, inputs, log)
    try:
        if executor == "ray":
            from .executor.ray import execute_ray

            return execute_ray(stage, ray_workers, progress=False, log=log)
        return execute(stage, num_workers, worker_index, False, None, log)
    except DiskFull:
        shutil.rmtree(out.root / SCRATCH_DIR, ignore_errors=True)  # free what we took
        raise


def mix_settings(config: MixConfig, tokenizer: TargetTokenizer) -> dict[str, Any]:
    settings = {**asdict(config), "tokenizer_hash": _hash(tokenizer.json), "inputs": _input_identity(config)}
    for key in ("overwrite", "workers", "verify", "rebuild", "allow_partial"):  # none changes the output
        settings.pop(key)
    return settings


def _input_identity(config: MixConfig) -> list[dict[str, Any]]:
    """What the inputs are, for the fingerprint: an instructpt output folder by its manifest's
    fingerprint (so a recomputed templify run means a new mix), a file by its size."""
    identity = []
    for spec in config.sources:
        for path in spec.paths:
            manifest = OutputDir(path).read_manifest() if Path(path).is_dir() else None
            if manifest is not None:
                identity.append({"path": path, "fingerprint": manifest.get("fingerprint")})
            else:
                identity.extend({"path": str(f), "bytes": file_size(f)} for f in source_files(path))
    return identity


def _hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plan_and_write(config: MixConfig, tokenizer: TargetTokenizer, out: OutputDir, data: list[SourceData],
                    log: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    """Plan every source's share, shuffle, write the output; returns the manifest's figures."""
    plans = plan(data, config.seed, config.upsample)
    source_of = np.concatenate([np.full(len(p.selected), i, dtype=np.int16) for i, p in enumerate(plans)])
    doc_of = np.concatenate([p.selected for p in plans])
    order = np.random.default_rng(config.seed).permutation(len(doc_of))
    dtype = token_dtype(tokenizer.vocab_size)
    shards, dropped = _write(config, data, source_of[order], doc_of[order], dtype, out)
    sources = []
    anchor_tokens = None
    for d, p in zip(data, plans):
        selected_tokens = p.tokens_selected(d.lengths)
        factor = selected_tokens / p.tokens_available if p.tokens_available else 0.0
        sampling = (
            "all"
            if p.weight is None or len(p.selected) == p.documents_available and factor == 1
            else (f"upsampled x{factor:.3f}" if factor > 1 else f"downsampled to {factor:.1%}")
        )
        if p.weight is not None and anchor_tokens is None:
            anchor_tokens = selected_tokens
        sources.append({
            "name": p.name, "paths": d.spec.paths, "weight": p.weight,
            "documents_available": p.documents_available,
            "tokens_available": p.tokens_available, "rejected": dict(sorted(d.rejects.items())),
            "target_tokens": p.target_tokens, "documents_selected": int(len(p.selected)),
            "tokens_selected": selected_tokens, "sampling": sampling,
        })  # fmt: skip
    total = sum(s["tokens_selected"] for s in sources)
    ratio = {s["name"]: round(s["tokens_selected"] / total, 6) if total else 0.0 for s in sources}
    requested = None
    weighted = [s for s in sources if s["weight"] is not None]
    if weighted:
        base = weighted[0]
        requested = {s["name"]: s["weight"] / base["weight"] for s in weighted}
        achieved = {s["name"]: s["tokens_selected"] / base["tokens_selected"] for s in weighted}
        for s in weighted:
            s["ratio_to_anchor_requested"] = round(requested[s["name"]], 6)
            s["ratio_to_anchor_achieved"] = round(achieved[s["name"]], 6)
        for s in weighted[1:]:
            if s["sampling"].startswith("upsampled"):
                log(f"note: source {s['name']!r} was repeated ({s['sampling']}) to meet the ratio")
    result = {
        "sources": sources, "token_share": ratio, "tokens_total": total, "documents_total": int(len(doc_of)),
        "tokenizer": {"name": tokenizer.name, "bos_text": tokenizer.bos_text, "eos_text": tokenizer.eos_text,
                      "vocab_size": tokenizer.vocab_size, "dtype": str(dtype)},
        "format": config.format, "seed": config.seed, "pack": config.pack, "seq_len": config.seq_len,
        "tokens_dropped_by_packing": dropped, "shards": shards,
    }  # fmt: skip
    write_json(out.root / "summary.json", {k: result[k] for k in ("sources", "token_share", "tokens_total")})
    return result


def _write(config: MixConfig, data: list[SourceData], sources: np.ndarray, docs: np.ndarray,
           dtype: np.dtype, out: OutputDir) -> tuple[list[dict], int]:  # fmt: skip
    """Write the shuffled documents in `config.format`; returns shard records and packing loss."""

    def stream() -> Iterator[tuple[int, int]]:
        yield from zip(sources.tolist(), docs.tolist())

    if config.format in ("jsonl", "parquet"):
        return _write_texts(config, data, stream(), out), 0
    if config.pack:
        return _write_packed(config, data, stream(), dtype, out)
    shards: list[dict] = []
    batch: list[tuple[int, int]] = []
    tokens = 0
    for s, d in stream():
        batch.append((s, d))
        tokens += int(data[s].lengths[d])
        if tokens >= config.shard_tokens:
            shards.append(_write_token_shard(config, data, batch, dtype, out, len(shards)))
            batch, tokens = [], 0
    if batch or not shards:
        shards.append(_write_token_shard(config, data, batch, dtype, out, len(shards)))
    if config.format == "hf":
        _save_hf_dataset(out, shards)
    return shards, 0


def _write_token_shard(config: MixConfig, data: list[SourceData], batch: list[tuple[int, int]],
                       dtype: np.dtype, out: OutputDir, index: int) -> dict:  # fmt: skip
    arrays = [data[s].doc_tokens(d) for s, d in batch]
    tokens = np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)
    lengths = [len(a) for a in arrays]
    prefix = out.root / "data" / f"part-{index:05d}"
    if config.format == "megatron":
        write_megatron(prefix, tokens, lengths)
        files = [f"data/{prefix.name}.bin", f"data/{prefix.name}.idx"]
    elif config.format == "olmo":
        ids = [data[s].ids[d] for s, d in batch]
        write_olmo(prefix, tokens, lengths, ids, [data[s].spec.name for s, _ in batch])
        files = [f"data/{prefix.name}.npy", f"data/{prefix.name}.csv.gz"]
    else:  # hf: arrow rows, one document each
        rows = {"input_ids": [a.tolist() for a in arrays], "id": [data[s].ids[d] for s, d in batch],
                "source": [data[s].spec.name for s, _ in batch]}  # fmt: skip
        files = [_write_arrow(out, index, rows)]
    return {"files": files, "documents": len(batch), "tokens": int(tokens.size)}


def _write_packed(config: MixConfig, data: list[SourceData], stream: Iterator[tuple[int, int]],
                  dtype: np.dtype, out: OutputDir) -> tuple[list[dict], int]:  # fmt: skip
    rows_per_shard = max(1, config.shard_tokens // config.seq_len)
    total = 0
    shards: list[dict] = []
    rows: list[np.ndarray] = []
    starts: list[list[int]] = []

    def docs() -> Iterator[np.ndarray]:
        nonlocal total
        for s, d in stream:
            doc = data[s].doc_tokens(d)
            total += len(doc)
            yield doc

    def flush() -> None:
        index = len(shards)
        tokens = np.concatenate(rows).astype(dtype) if rows else np.zeros(0, dtype=dtype)
        if config.format == "megatron":
            prefix = out.root / "data" / f"part-{index:05d}"
            write_megatron(prefix, tokens, [config.seq_len] * len(rows))
            files = [f"data/{prefix.name}.bin", f"data/{prefix.name}.idx"]
        else:
            files = [
                _write_arrow(out, index, {"input_ids": [r.tolist() for r in rows], "doc_starts": starts})
            ]
        shards.append({"files": files, "rows": len(rows), "tokens": int(tokens.size)})

    for row, row_starts in pack(docs(), config.seq_len):
        rows.append(row)
        starts.append(row_starts)
        if len(rows) == rows_per_shard:
            flush()
            rows, starts = [], []
    if rows or not shards:
        flush()
    if config.format == "hf":
        _save_hf_dataset(out, shards)
    written = sum(s["tokens"] for s in shards)
    return shards, total - written


def _write_arrow(out: OutputDir, index: int, columns: dict[str, list]) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink, compression="zstd")
    path = out.root / ".work" / "hf-parts" / f"part-{index:05d}.parquet"
    write_atomic(path, sink.getvalue().to_pybytes())
    return f"hf/ (from {path.name})"


def _save_hf_dataset(out: OutputDir, shards: list[dict]) -> None:
    """Collect the parts into a Hugging Face dataset saved with `save_to_disk` in out/hf."""
    try:
        import datasets
    except ImportError:
        raise UsageError(
            "--format hf needs the 'datasets' package: pip install 'instructpt[datasets]'"
        ) from None
    parts = sorted((out.root / ".work" / "hf-parts").glob("part-*.parquet"))
    dataset = datasets.Dataset.from_parquet(
        [str(p) for p in parts], cache_dir=str(out.root / ".work" / "cache")
    )
    dataset.save_to_disk(str(out.root / "hf"), num_shards=max(1, len(parts)))
    for shard in shards:
        shard["files"] = ["hf/"]


def _write_texts(config: MixConfig, data: list[SourceData], stream: Iterator[tuple[int, int]],
                 out: OutputDir) -> list[dict]:  # fmt: skip
    shards: list[dict] = []
    rows: list[dict] = []
    tokens = 0

    def flush() -> None:
        index = len(shards)
        path = out.root / "data" / f"part-{index:05d}.{config.format}"
        if config.format == "jsonl":
            payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            sink = pa.BufferOutputStream()
            pq.write_table(pa.Table.from_pylist(rows), sink, compression="zstd")
            payload = sink.getvalue().to_pybytes()
        write_atomic(path, payload)
        shards.append({"files": [f"data/{path.name}"], "documents": len(rows), "tokens": tokens})

    for s, d in stream:
        source = data[s]
        assert source.texts is not None and source.ids is not None
        rows.append({"text": source.texts[d], "id": source.ids[d], "source": source.spec.name})
        tokens += int(source.lengths[d])
        if tokens >= config.shard_tokens:
            flush()
            rows, tokens = [], 0
    if rows or not shards:
        flush()
    return shards
