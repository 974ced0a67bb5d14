"""Mix pass 1, tokenize: the target tokenizer (BOS/EOS as text), worker processes, and one input
file tokenized into scratch files under out/.work/tokens (one executor shard, see stage.py)."""

from __future__ import annotations

import ast
import json
import multiprocessing
import os
import sys
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import UsageError
from ..io.corpus import CorpusReader, expand_inputs
from ..io.files import (
    NO_SPACE,
    commit_file,
    disk_full,
    make_folder,
)
from ..io.integrity import DamagedData, check_run, marker_files
from ..io.output import MANIFEST, SCRATCH_DIR, OutputDir
from ..records import Document, Reject
from .provenance import text_meta
from .recipes import SourceSpec

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
        from ..tokenization import load_tokenizer

        return cls.of(load_tokenizer(source, hint="pass --tokenizer <folder>"), source, bos_text, eos_text)

    @classmethod
    def of(cls, loaded: Any, source: str, bos_text: str | None = None, eos_text: str | None = None
           ) -> TargetTokenizer:  # fmt: skip
        """From a `tokenization.Tokenizer` already loaded from `source` (as `load`)."""
        rust = getattr(loaded.backend, "backend_tokenizer", loaded.backend)
        if not hasattr(rust, "to_str"):
            raise UsageError(f"{source}: mix needs a Hugging Face `tokenizers`-based (fast) tokenizer")
        bos = bos_text if bos_text is not None else (loaded.bos_token or "")
        eos = eos_text if eos_text is not None else loaded.eos_token
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


def spawn_reruns_caller() -> bool:
    """Whether processes spawned now would run this very call again: spawn imports the main
    script in each worker (as `__mp_main__`), so a script that calls `mix`/`run` at its top
    level, outside `if __name__ == "__main__":`, would have every worker start a pool of its
    own, and the pool would wait forever. True when this call comes from such a line."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None) or ""
    if main is None or name.split(".")[-1] == "__main__" or not getattr(main, "__file__", None):
        return False  # spawn does not import it: `python -c`, a REPL, `python -m package`
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_code.co_name == "<module>" and frame.f_globals is vars(main)):
        frame = frame.f_back
    if frame is None:
        return False  # not called from the main script's top-level code
    try:
        tree = ast.parse(Path(frame.f_code.co_filename).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return True  # cannot tell: assume the worst
    line = frame.f_lineno or 0
    guards = [node for node in tree.body if _is_main_guard(node)]
    return not any(node.lineno <= line <= (node.end_lineno or line) for node in guards)


def _is_main_guard(node: ast.stmt) -> bool:
    """`if __name__ == "__main__":` (either way round)."""
    test = node.test if isinstance(node, ast.If) else None
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [side.id for side in sides if isinstance(side, ast.Name)]
    values = [side.value for side in sides if isinstance(side, ast.Constant)]
    return names == ["__name__"] and values == ["__main__"]


class Encoder:
    """Batched tokenization in `workers` processes (in-process with Rust threads if 1, or if the
    main script would be rerun by the workers: see `spawn_reruns_caller`)."""

    def __init__(self, tokenizer: TargetTokenizer, workers: int, log: Callable[[str], None] | None = None
                 ) -> None:  # fmt: skip
        self.workers = workers or os.cpu_count() or 1
        self.pool = None
        if self.workers > 1 and spawn_reruns_caller():
            if log is not None:
                log("note: tokenizing in this process (Rust threads), not in worker processes: the main "
                    "script calls instructpt at its top level, which each worker would run again; put "
                    'that call under `if __name__ == "__main__":` to use them')  # fmt: skip
            self.workers = 1
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
    meta: _Blobs | None = None  # augmented texts: JSON [entry ids, template ids] (provenance.py)
    files: list[str] = field(default_factory=list)  # per tokenized shard: its input file

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


def _hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
                   out: OutputDir, index: int, keep_texts: bool, batch_docs: int = 512,
                   keep: Callable[[str], bool] | None = None
                   ) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:  # fmt: skip
    """Tokenize one input file of `spec` into out/.work/tokens/part-<index>.*; returns the files'
    records and counts (documents, tokens, rejected.<reason>, excluded). `checked`: the file is a
    shard of one of our runs, so an unreadable one is damage, not a reject. `keep`: documents
    whose id it refuses are left out, counted as `excluded` (the corpus split, split.py)."""
    reader = CorpusReader([path], spec.text_field, spec.id_field, spec.response_field,
                          reject_duplicate_ids=False)  # fmt: skip
    folder = out.root / TOKENS
    make_folder(folder)
    final = {name: folder / f"part-{index:05d}.{name}" for name in
             ("tokens", "lengths", "ids", "ids.idx", "texts", "texts.idx", "rejects.jsonl", "meta",
              "meta.idx")}  # fmt: skip
    tmp = {name: p.with_name(f".{p.name}.{os.getpid()}.tmp") for name, p in final.items()}
    ids = _BlobWriter(tmp["ids"])
    texts = _BlobWriter(tmp["texts"]) if keep_texts else None
    # A shard of a templify run: its texts' entry and template ids travel to the provenance index.
    meta = _BlobWriter(tmp["meta"]) if checked else None
    known = text_meta(path) if checked else {}
    rejects_log = open(tmp["rejects.jsonl"], "w")
    counts: dict[str, int] = {}
    excluded = [0]
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
            if keep is not None and not keep(item.id):
                excluded[0] += 1
                continue
            ids.append(item.id)
            if texts is not None:
                texts.append(item.text)
            if meta is not None:
                meta.append(known.get(item.id, ""))
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
        for blob in (ids, texts, meta):
            if blob is not None:
                blob.handle.close()
        rejects_log.close()
        extra = {"lengths": lengths.tobytes(), "ids.idx": ids.offsets.tobytes()}
        if texts is not None:
            extra["texts.idx"] = texts.offsets.tobytes()
        if meta is not None:
            extra["meta.idx"] = meta.offsets.tobytes()
        for name, data in extra.items():
            with open(tmp[name], "wb") as handle:
                _write_to(handle, data, final[name])
        n = len(lengths)
        rows = {"tokens": int(sum(lengths)), "lengths": n, "ids": n, "ids.idx": n + 1, "texts": n,
                "texts.idx": n + 1, "rejects.jsonl": sum(counts.values()), "meta": n,
                "meta.idx": n + 1}  # fmt: skip
        names = [k for k in final if (k not in ("texts", "texts.idx") or keep_texts)
                 and (k not in ("meta", "meta.idx") or meta is not None)]  # fmt: skip
        files = dict(commit_file(out.root, tmp[k], final[k], rows[k]) for k in names)
    finally:
        rejects_log.close()
        for blob in (ids, texts, meta):
            if blob is not None:
                blob.handle.close()
        for t in tmp.values():
            t.unlink(missing_ok=True)
    return files, {"documents": len(lengths), "tokens": rows["tokens"], **counts,
                   **({"excluded": excluded[0]} if excluded[0] else {})}  # fmt: skip
