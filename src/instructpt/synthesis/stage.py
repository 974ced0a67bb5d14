"""Synthesis over a corpus as an executor stage: shards, figures, the Python API.

The executor (executor/) owns everything about *where* and *whether* a shard runs;
`SynthesizeStage` owns what a shard is, and `rounds.synthesize_batch` what happens to it.
The input stream is cut into shards of K documents (a reject belongs to the shard of the
documents around it). Each shard runs its M
rounds, is written atomically and then recorded in manifest.json; a rerun of the
same command skips recorded shards and computes the rest, so a crash costs at most
the shard in flight, and the output is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..engines.base import Engine
from ..engines.options import DEFAULT_MAX_MODEL_LEN
from ..errors import UsageError
from ..executor import BaseStage, Progress, ShardResult, check_worker, launch, lock_name, open_locked
from ..executor.local import stderr_log
from ..io.corpus import CorpusReader, estimate_records, expand_inputs, file_size
from ..io.files import read_json_or_none, write_json
from ..io.integrity import (
    check_inputs,
    check_run,
    file_problem,
    marker_files,
    read_verified,
    write_output_file,
    write_recorded,
)
from ..io.output import FORMATS, REJECTS, SUMMARY, OutputDir, encode_entries, encode_rejects
from ..records import Document, Entry, Reject, content_id
from ..split import check_fraction, select
from .guard import DEFAULT_MIN_PARSE_RATE, RunWatch
from .rounds import RoundSettings, synthesize_batch, synthesize_batch_async
from .summary import run_summary

# Default --max-doc-chars: about 2.5M tokens, several books long. Longer "documents" are almost
# always dumps (logs, base64, concatenated files); each would split into ~700 parts.
DEFAULT_MAX_DOC_CHARS = 10_000_000
STAGE = "synthesize"


@dataclass
class SynthesisConfig:
    """Everything that decides the output of `instructpt synthesize`."""

    inputs: list[str]
    output: str
    model: str
    engine: str = "auto"
    tokenizer: str | None = None
    text_field: str = "text"
    id_field: str = "id"
    shard_size: int = 1000
    limit: int | None = None
    format: str = "parquet"
    rounds: RoundSettings = field(default_factory=RoundSettings)
    max_model_len: int = DEFAULT_MAX_MODEL_LEN
    strict: bool = False
    overwrite: bool = False
    # Records with more characters than this are rejected (`too_many_chars`); None: no limit.
    max_doc_chars: int | None = DEFAULT_MAX_DOC_CHARS
    verify: bool = False  # hash every finished file instead of trusting size + mtime
    rebuild: bool = False  # recompute when the inputs or settings changed, instead of refusing
    # The paper's corpus split (split.py): convert only the documents this share selects by id.
    fraction: float = 1.0
    # Not in the fingerprint (a rerun may change them): synthesis/guard.py.
    target_tokens: int | None = None  # stop cleanly once the augmented texts would reach this many tokens
    min_parse_rate: float = DEFAULT_MIN_PARSE_RATE  # stop when fewer generations parse; 0: never

    def fingerprint_settings(self, files: Sequence[Path]) -> dict[str, Any]:
        """The settings a resumed run must share with the run that started the folder."""
        return {
            "inputs": [{"path": str(f), "bytes": file_size(f)} for f in files],
            "text_field": self.text_field,
            "id_field": self.id_field,
            "engine": self.engine,
            "model": self.model,
            "tokenizer": self.tokenizer,
            "max_model_len": self.max_model_len,
            "shard_size": self.shard_size,
            "limit": self.limit,
            "format": self.format,
            "max_doc_chars": self.max_doc_chars,
            **asdict(self.rounds),
            **({"fraction": self.fraction} if self.fraction != 1 else {}),  # 1: folders written before it
        }


def iter_shards(
    items: Iterable[Document | Reject], shard_size: int, limit: int | None = None
) -> Iterator[tuple[list[Document], list[Reject]]]:
    """(documents, rejects) per shard. Rejects after a shard's last document, up to the
    next document, stay with that shard, so the last shard takes the trailing ones."""
    docs: list[Document] = []
    rejects: list[Reject] = []
    taken = 0
    for item in items:
        if isinstance(item, Reject):
            rejects.append(item)
            continue
        if limit is not None and taken >= limit:
            break
        if len(docs) == shard_size:
            yield docs, rejects
            docs, rejects = [], []
        docs.append(item)
        taken += 1
    if docs or rejects:
        yield docs, rejects


def run_synthesis(
    config: SynthesisConfig,
    make_engine: Callable[[], Engine],
    progress: bool | None = None,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
    num_workers: int = 1,
    worker_index: int = 0,
) -> dict[str, Any]:
    """Synthesize `config.inputs` into `config.output`, resuming what is there.

    With `num_workers` > 1 this process is static worker `worker_index` and computes only the
    shards whose index is congruent to it; the run is finalized by whichever worker finds
    every shard done. `make_engine` is called only if a shard of ours still needs computing.
    Returns the summary (also written to summary.json).
    """
    check_worker(num_workers, worker_index)
    if config.target_tokens is not None and num_workers > 1:
        raise UsageError("--target-tokens needs the shards in order: run it in one process, "
                         "not with --num-workers")  # fmt: skip
    stage = open_stage(config, make_engine, lock_name(num_workers, worker_index), log)

    def total() -> int | None:
        n = estimate_records(stage.files) if progress is not False and num_workers == 1 else None
        n = n if n is None or config.fraction >= 1 else round(n * config.fraction)
        return n if config.limit is None else (config.limit if n is None else min(n, config.limit))

    return launch(stage, "local", num_workers, worker_index, progress=progress, total=total, log=log)


def open_stage(config: SynthesisConfig, make_engine: Callable[[], Engine], lock: str = ".lock",
               log: Callable[[str], None] | None = None) -> SynthesizeStage:  # fmt: skip
    """The synthesize stage of `config`, its output folder opened (see `open_synthesis`)."""
    files, out, manifest = open_synthesis(config, lock=lock)
    if log is not None and (skipped := manifest.get("skipped_files")):
        log(f"warning: skipped {len(skipped)} file(s) of unsupported type: {', '.join(skipped)}")
    return SynthesizeStage(config, out, manifest, files, make_engine, log or stderr_log)


def open_synthesis(
    config: SynthesisConfig, lock: str = ".lock"
) -> tuple[list[Path], OutputDir, dict[str, Any]]:
    """Validate `config`, expand its inputs, and open (or create) its output folder's manifest."""
    if config.shard_size < 1:
        raise UsageError(f"--shard-size must be at least 1, got {config.shard_size}")
    if config.format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    if config.max_doc_chars is not None and config.max_doc_chars < 1:
        raise UsageError(f"--max-doc-chars must be at least 1 (0 on the command line: no limit), "
                         f"got {config.max_doc_chars}")  # fmt: skip
    check_fraction(config.fraction)
    skipped: list[Path] = []
    files = expand_inputs(config.inputs, skipped)
    out = OutputDir(config.output, config.format)
    settings = config.fingerprint_settings(files)
    with open_locked(out, settings, STAGE, config.overwrite, config.rebuild, lock=lock) as manifest:
        manifest = check_inputs(out, manifest, files, settings, config.verify, config.rebuild)
    manifest["skipped_files"] = [str(p) for p in skipped]  # named in the summary
    return files, out, manifest


class SynthesizeStage(BaseStage):
    """Synthesis as an executor stage: shard i is documents [i*K, (i+1)*K) of the input stream
    (with the rejects around them); it runs its M rounds and writes entries and rejects."""

    name = STAGE

    def __init__(self, config: SynthesisConfig | None, out: OutputDir, manifest: dict[str, Any],
                 files: Sequence[Path] = (), make_engine: Callable[[], Engine] | None = None,
                 log: Callable[[str], None] = stderr_log) -> None:  # fmt: skip
        self.config, self.out, self.manifest, self.files = config, out, manifest, list(files)
        self.make_engine, self.log = make_engine, log
        self.verify = bool(config and config.verify)
        self.engine: Engine | None = None
        self.watch = RunWatch(out.root, config.min_parse_rate, config.target_tokens) if config else None

    def shards(self) -> Iterator[tuple[int, tuple[list[Document], list[Reject], int]]]:
        """(documents, rejects, documents not selected by --fraction) per shard; the documents
        --fraction leaves out before a shard's last document, up to the next one, count with it."""
        config = self.config
        assert config is not None
        reader = CorpusReader(self.files, config.text_field, config.id_field,
                              max_doc_chars=config.max_doc_chars, require_documents=True)  # fmt: skip
        left_out = [0]
        items = reader if config.fraction >= 1 else select(reader, config.fraction, left_out)
        index = -1
        for index, (docs, rejects) in enumerate(iter_shards(items, config.shard_size, config.limit)):
            if config.strict and rejects:
                r = rejects[0]
                raise UsageError(f"{r.source}: {r.reason} ({r.detail}); without --strict it is skipped")
            not_selected, left_out[0] = left_out[0], 0
            yield index, (docs, rejects, not_selected)
        if index < 0 and left_out[0]:
            raise UsageError(f"--fraction {config.fraction:g} selected none of the {left_out[0]:,} "
                             "documents; raise it")  # fmt: skip

    def size(self, work: tuple[list[Document], list[Reject], int]) -> int:
        return len(work[0])

    def prepare(self) -> None:
        assert self.make_engine is not None
        self.engine = self.make_engine()
        self.manifest["engine"] = self.engine.describe()

    def describe(self) -> dict[str, Any] | None:
        return self.engine.describe() if self.engine is not None else None

    def can_async(self) -> bool:
        # Engine.concurrent, not hasattr(agenerate): every Engine has a default agenerate now
        return bool(getattr(self.engine, "concurrent", False))

    def run(self, index: int, work: tuple[list[Document], list[Reject], int]) -> ShardResult:
        assert self.config is not None and self.engine is not None
        docs, rejects, not_selected = work
        result = synthesize_batch(docs, self.engine, self._rounds(), chain_prefix=f"{index:05d}-")
        return self._write(index, rejects, result, not_selected)

    async def arun(self, index: int, work: tuple[list[Document], list[Reject], int]) -> ShardResult:
        """`run` through the barrier-free scheduler (engines with `agenerate`)."""
        assert self.config is not None and self.engine is not None
        docs, rejects, not_selected = work
        result = await synthesize_batch_async(docs, self.engine, self._rounds(), chain_prefix=f"{index:05d}-")
        return self._write(index, rejects, result, not_selected)

    def _rounds(self) -> RoundSettings:
        assert self.config is not None
        return self.watch.rounds(self.config.rounds) if self.watch else self.config.rounds

    def stop_reason(self, next_index: int) -> str | None:
        """Called by the executor before computing shard `next_index` (see guard.RunWatch)."""
        return self.watch.stop_reason(next_index) if self.watch else None

    def shard_finished(self, index: int, marker: dict[str, Any]) -> None:
        """Called by the executor once shard `index`'s marker is written; raises on a collapse."""
        if self.watch:
            self.watch.shard_finished(index, marker)

    def shard_report(self) -> Any:
        """On a Ray actor: what the guard saw of the shard just computed, for the driver."""
        return self.watch.take() if self.watch else None

    def absorb_report(self, report: Any) -> None:
        """On the Ray driver, before `shard_finished`: an actor's `shard_report`."""
        if self.watch and report is not None:
            self.watch.absorb(report)

    async def aclose(self) -> None:
        if hasattr(self.engine, "aclose"):
            await self.engine.aclose()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def _write(self, index: int, rejects: list[Reject], result: Any, not_selected: int = 0) -> ShardResult:
        assert self.config is not None
        out = self.out
        if self.watch:
            self.watch.add(result.entries)
        all_rejects = rejects + result.rejects  # unreadable inputs, then documents skipped as too long
        result.counts.add("rejected_inputs", len(all_rejects))
        if not_selected:
            result.counts.add("not_selected", not_selected)  # --fraction: left for the raw share
        for r in all_rejects:
            result.counts.add(f"rejected.{r.reason}")
        data = encode_entries(result.entries, self.config.format, self.config.rounds.keep_generations)
        files = dict([write_recorded(out.root, out.shard_file(index), data, len(result.entries))])
        if all_rejects:
            rejects_file = out.shard_rejects_file(index)
            files.update(
                [write_recorded(out.root, rejects_file, encode_rejects(all_rejects), len(all_rejects))]
            )
        extra = {
            "file": str(out.shard_file(index).relative_to(out.root)),
            "rejects_file": str(out.shard_rejects_file(index).relative_to(out.root)) if all_rejects else None,
        }
        return ShardResult(files, result.counts.to_dict(), extra)  # fmt: skip

    def finished(self) -> dict[str, Any] | None:
        """The summary of a complete run whose files are all intact, else None (work to do)."""
        out, manifest = self.out, self.manifest
        if not manifest.get("complete") or not check_run(out.root, self.verify).complete:
            return None
        record = manifest.get("files", {}).get(REJECTS, {})  # older manifests; now in OUTPUT_FILES
        if file_problem(out.root / REJECTS, record, self.verify) is not None:
            return None
        summary = read_json_or_none(out.root / SUMMARY)
        if isinstance(summary, dict) and self.watch and self.watch.continues(summary):
            manifest["complete"] = False  # stopped at a smaller --target-tokens: go on
            return None
        return summary if isinstance(summary, dict) else None

    def finalize(self, markers: dict[int, dict[str, Any]], complete: bool, progress: Progress | None
                 ) -> dict[str, Any]:  # fmt: skip
        """summary.json; when every shard is done, also rejects.jsonl (recorded in the manifest)."""
        out, manifest = self.out, self.manifest
        if complete:
            fix = "rerun the same command to recompute its shard"
            chunks = [read_verified(out.root / name, record, fix)
                      for i in sorted(markers) for name, record in marker_files(markers[i]).items()
                      if name == markers[i].get("rejects_file")]  # fmt: skip
            data = b"".join(chunks)
            write_output_file(out.root, manifest, REJECTS, data, data.count(b"\n"))
            manifest.pop("files", None)  # where older manifests recorded it (`finished` reads it)
        summary = run_summary(markers, complete, progress)
        summary["skipped_files"] = list(manifest.get("skipped_files", []))  # inputs of unsupported type
        if self.watch:
            self.watch.summarize(summary, markers)
        write_json(out.root / SUMMARY, summary)
        if summary["documents"] == 0 and summary["rejected_inputs"]:
            top = max(summary["rejected_by_reason"].items(), key=lambda kv: kv[1])
            self.log(f"warning: no document was usable; most rejects: {top[0]} ({top[1]}), "
                     f"see {out.root / REJECTS}")  # fmt: skip
        return summary


def reopen_stage(out: OutputDir, manifest: dict[str, Any], log: Callable[[str], None] = stderr_log
                 ) -> SynthesizeStage:  # fmt: skip
    """The stage of a synthesize folder, to finalize it (`instructpt merge`); computes nothing."""
    return SynthesizeStage(None, out, manifest, log=log)


def _as_document(item: Any, index: int) -> Document:
    if isinstance(item, Document):
        return item
    if isinstance(item, str):
        return Document(content_id(item), item, f"item {index}")
    if isinstance(item, Mapping):
        text = item.get("text")
        if not isinstance(text, str) or not text.strip():
            raise UsageError(f"document {index} has no non-empty 'text' string")
        doc_id = item.get("id")
        return Document(
            str(doc_id) if doc_id not in (None, "") else content_id(text),
            text,
            str(item.get("source", f"item {index}")),
        )
    raise UsageError(f"document {index} is a {type(item).__name__}; pass str, dict or Document")


def synthesize(
    documents: Iterable[str | Mapping[str, Any] | Document],
    engine: Engine,
    rounds: int = 2,
    max_new_tokens: int = 400,
    long_docs: str = "split",
    batch_size: int = 1000,
    keep_generations: bool = False,
) -> Iterator[Entry]:
    """Run docs/method.md §3 on `documents` and yield one `Entry` per document (or part), in order.

    Documents are grouped into batches of `batch_size`; the M rounds chain documents
    within a batch. Documents too long for the context are split, truncated or
    skipped (`long_docs`); skipped ones yield nothing.
    """
    if not isinstance(engine, Engine):
        raise UsageError(f"engine must be an Engine (from_function(fn, tokenizer) wraps a function), "
                         f"not {type(engine).__name__}")  # fmt: skip
    if isinstance(documents, str | bytes) or not isinstance(documents, Iterable):
        raise UsageError(f"documents must be a list (or iterable) of texts, dicts or Documents, "
                         f"not one {type(documents).__name__}")  # fmt: skip
    for name, value in (("rounds", rounds), ("max_new_tokens", max_new_tokens), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UsageError(f"{name} must be a whole number of at least 1, got {value!r}")
    settings = RoundSettings(rounds, max_new_tokens, long_docs, keep_generations)
    batch: list[Document] = []
    n_batch = 0
    for i, item in enumerate(documents):
        batch.append(_as_document(item, i))
        if len(batch) == batch_size:
            yield from synthesize_batch(batch, engine, settings, f"{n_batch:05d}-").entries
            batch, n_batch = [], n_batch + 1
    if batch:
        yield from synthesize_batch(batch, engine, settings, f"{n_batch:05d}-").entries
