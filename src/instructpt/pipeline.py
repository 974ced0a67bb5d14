"""Running synthesis over a corpus: shards, resumption, progress, figures.

The executor owns everything about *where* work happens; `rounds.synthesize_batch`
owns *what* happens to a batch. The input stream is cut into shards of K documents
(a reject belongs to the shard of the documents around it). Each shard runs its M
rounds, is written atomically and then recorded in manifest.json; a rerun of the
same command skips recorded shards and computes the rest, so a crash costs at most
the shard in flight, and the output is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .corpus import CorpusReader, estimate_records, expand_inputs, file_size
from .engines.base import Engine
from .errors import SettingsChanged, UsageError
from .output import (
    FORMATS,
    MANIFEST,
    REJECTS,
    SHARDS_DIR,
    SUMMARY,
    OutputDir,
    check_inputs,
    check_run,
    encode_entries,
    encode_rejects,
    file_problem,
    marker_files,
    marker_problem,
    read_json_or_none,
    read_verified,
    write_json,
    write_recorded,
)
from .records import Counts, Document, Entry, Reject, content_id
from .rounds import RoundSettings, synthesize_batch, synthesize_batch_async

# Default --max-doc-chars: about 2.5M tokens, several books long. Longer "documents" are almost
# always dumps (logs, base64, concatenated files); each would split into ~700 parts.
DEFAULT_MAX_DOC_CHARS = 10_000_000


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
    max_model_len: int = 4096
    strict: bool = False
    overwrite: bool = False
    # Records with more characters than this are rejected (`too_many_chars`); None: no limit.
    max_doc_chars: int | None = DEFAULT_MAX_DOC_CHARS
    verify: bool = False  # hash every finished file instead of trusting size + mtime
    rebuild: bool = False  # recompute when the inputs or settings changed, instead of refusing

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


class Progress:
    """A progress bar with documents/s, raw and generated tokens/s and pairs/document."""

    def __init__(self, enabled: bool | None, total: int | None) -> None:
        from tqdm import tqdm

        # disable=None: a bar on a terminal, none in logs and pipes.
        disable = None if enabled is None else not enabled
        self.bar = tqdm(
            total=total,
            unit="doc",
            disable=disable,
            dynamic_ncols=True,
            file=sys.stderr,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} docs [{elapsed}<{remaining}]{postfix}",
        )
        self.started = time.monotonic()
        self.counts = Counts()  # computed in this process (skipped shards excluded)

    def skipped(self, n_docs: int) -> None:
        self.bar.update(n_docs)

    def computed(self, counts: Counts) -> None:
        self.counts.update(counts)
        self.bar.update(counts["documents"])
        rates = throughput(self.counts, time.monotonic() - self.started)
        self.bar.set_postfix_str(
            f"{rates['documents_per_s']:.1f} doc/s, {rates['raw_tokens_per_s']:,.0f} raw tok/s, "
            f"{rates['generated_tokens_per_s']:,.0f} gen tok/s, "
            f"{_ratio(self.counts['pairs'], self.counts['entries']):.2f} pairs/doc",
            refresh=False,
        )

    def close(self) -> None:
        self.bar.close()


def throughput(counts: Counts, seconds: float) -> dict[str, float]:
    s = max(seconds, 1e-9)
    return {
        "seconds": round(seconds, 3),
        "documents_per_s": round(counts["documents"] / s, 3),
        "raw_tokens_per_s": round(counts["raw_tokens"] / s, 1),
        "generated_tokens_per_s": round(counts["generated_tokens"] / s, 1),
    }


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


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
    if not 0 <= worker_index < num_workers:
        raise UsageError(f"--worker-index must be in 0..{num_workers - 1}, got {worker_index}")
    files, out, manifest = open_synthesis(config, lock=_lock_name(num_workers, worker_index))
    if skipped := manifest.get("skipped_files"):
        log(f"warning: skipped {len(skipped)} file(s) of unsupported type: {', '.join(skipped)}")
    with out.locked(_lock_name(num_workers, worker_index)):
        if (finished := _finished(out, manifest, config.verify)) is not None:
            log(f"{out.root}: run already complete, nothing to do")
            return finished
        runner = ShardRunner(config, out, manifest["fingerprint"])
        engine: Engine | None = None
        total = estimate_records(files) if progress is not False and num_workers == 1 else None
        if config.limit is not None:
            total = config.limit if total is None else min(total, config.limit)
        bar = Progress(progress, total=total)
        n_shards = 0
        try:
            shards = runner.shards(files)
            for index, docs, rejects in shards:
                n_shards = index + 1
                if index % num_workers != worker_index:
                    continue
                if runner.done(index):
                    bar.skipped(len(docs))
                    continue
                if engine is None:
                    engine = make_engine()
                    manifest["engine"] = engine.describe()
                    bar.started = time.monotonic()  # throughput excludes loading the model
                if hasattr(engine, "agenerate"):  # no barriers: hand the rest to the async scheduler
                    rest = itertools.chain([(index, docs, rejects)], shards)
                    n_shards = asyncio.run(_drive_async(runner, rest, engine, manifest, bar, num_workers,
                                                        worker_index))  # fmt: skip
                    break
                try:
                    marker = runner.run(index, docs, rejects, engine)
                except Exception as exc:
                    runner.record_failure(index, exc)
                    raise
                _done(runner, manifest, index, marker, bar, num_workers)
        finally:
            bar.close()
            if engine is not None:
                engine.close()
        runner.record_shard_count(n_shards)
        summary = finalize(out, manifest, bar, log)
    return summary


def _done(runner: ShardRunner, manifest: dict[str, Any], index: int, marker: dict[str, Any],
          bar: Progress, num_workers: int) -> None:  # fmt: skip
    if num_workers == 1:
        manifest["shards"][str(index)] = marker
        runner.out.write_manifest(manifest)  # progress for readers; the marker is what counts
    bar.computed(Counts(dict(marker["counts"])))


# Shards the async scheduler keeps open at once: new shards start while old ones drain, so the
# engine always has the next chains' requests; requests in flight are bounded by the engine.
SHARDS_IN_FLIGHT = 4


async def _drive_async(runner: ShardRunner, shards: Iterator[tuple[int, list[Document], list[Reject]]],
                       engine: Engine, manifest: dict[str, Any], bar: Progress, num_workers: int,
                       worker_index: int) -> int:  # fmt: skip
    """Run shards concurrently through `engine.agenerate`; returns the number of shards seen."""
    pending: dict[asyncio.Task, int] = {}
    n_shards = 0

    async def settle(wait_all: bool) -> None:
        done, _ = await asyncio.wait(pending, return_when=asyncio.ALL_COMPLETED if wait_all
                                     else asyncio.FIRST_COMPLETED)  # fmt: skip
        for task in done:
            index = pending.pop(task)
            try:
                marker = task.result()
            except Exception as exc:
                runner.record_failure(index, exc)
                for other in pending:
                    other.cancel()
                raise
            _done(runner, manifest, index, marker, bar, num_workers)

    try:
        for index, docs, rejects in shards:
            n_shards = index + 1
            if index % num_workers != worker_index:
                continue
            if runner.done(index):
                bar.skipped(len(docs))
                continue
            if len(pending) >= SHARDS_IN_FLIGHT:
                await settle(wait_all=False)
            pending[asyncio.create_task(runner.arun(index, docs, rejects, engine))] = index
        while pending:
            await settle(wait_all=True)
    finally:
        if hasattr(engine, "aclose"):
            await engine.aclose()
    return n_shards


def _lock_name(num_workers: int, worker_index: int) -> str:
    return ".lock" if num_workers == 1 else f".lock-w{worker_index}-of-{num_workers}"


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
    skipped: list[Path] = []
    files = expand_inputs(config.inputs, skipped)
    out = OutputDir(config.output, config.format)
    with out.locked(lock):
        settings = config.fingerprint_settings(files)
        try:
            manifest = out.open_run(settings, config.overwrite)
        except SettingsChanged:
            if not config.rebuild:
                raise
            manifest = out.open_run(settings, overwrite=True)
        manifest = check_inputs(out, manifest, files, settings, config.verify, config.rebuild)
    manifest["skipped_files"] = [str(p) for p in skipped]  # named in the summary
    return files, out, manifest


def _finished(out: OutputDir, manifest: dict[str, Any], full: bool = False) -> dict[str, Any] | None:
    """The summary of a complete run whose files are all intact, else None (work to do)."""
    if not manifest.get("complete") or not check_run(out.root, full).complete:
        return None
    record = manifest.get("files", {}).get(REJECTS, {})
    if file_problem(out.root / REJECTS, record, full) is not None:
        return None
    summary = read_json_or_none(out.root / SUMMARY)
    return summary if isinstance(summary, dict) else None


class ShardRunner:
    """Computes one shard and writes it: data, rejects, then its completion marker.

    Any process may run any shard (a local loop, a static worker, a Ray actor): the shard's
    bytes depend only on its documents and the settings, and the marker, written last, is the
    only thing that says it is done.
    """

    def __init__(self, config: SynthesisConfig, out: OutputDir, fingerprint: str | None = None) -> None:
        self.config = config
        self.out = out
        self.fingerprint = fingerprint  # of the run's settings, stamped on every marker

    def shards(self, files: Sequence[Path]) -> Iterator[tuple[int, list[Document], list[Reject]]]:
        reader = CorpusReader(files, self.config.text_field, self.config.id_field,
                              max_doc_chars=self.config.max_doc_chars)  # fmt: skip
        shards = iter_shards(reader, self.config.shard_size, self.config.limit)
        for index, (docs, rejects) in enumerate(shards):
            if self.config.strict and rejects:
                r = rejects[0]
                raise UsageError(f"{r.source}: {r.reason} ({r.detail}); without --strict it is skipped")
            yield index, docs, rejects

    def done(self, index: int) -> bool:
        """Whether shard `index` is finished and intact: its marker is readable, written under
        these settings, and every file it records checks out (cheaply, or fully with verify).
        Anything else (a missing, damaged or unreadable piece) means: compute it again."""
        marker = read_json_or_none(self.out.marker_file(index))
        if not isinstance(marker, dict):
            return False
        if self.fingerprint is not None and marker.get("fingerprint", self.fingerprint) != self.fingerprint:
            return False
        return marker_problem(self.out.root, marker, self.config.verify) is None

    def run(self, index: int, docs: list[Document], rejects: list[Reject], engine: Engine) -> dict[str, Any]:
        started = time.monotonic()
        result = synthesize_batch(docs, engine, self.config.rounds, chain_prefix=f"{index:05d}-")
        return self._write(index, rejects, result, started)

    async def arun(
        self, index: int, docs: list[Document], rejects: list[Reject], engine: Engine
    ) -> dict[str, Any]:
        """`run` through the barrier-free scheduler (engines with `agenerate`)."""
        started = time.monotonic()
        result = await synthesize_batch_async(docs, engine, self.config.rounds, chain_prefix=f"{index:05d}-")
        return self._write(index, rejects, result, started)

    def _write(self, index: int, rejects: list[Reject], result: Any, started: float) -> dict[str, Any]:
        config, out = self.config, self.out
        all_rejects = rejects + result.rejects  # unreadable inputs, then documents skipped as too long
        result.counts.add("rejected_inputs", len(all_rejects))
        for r in all_rejects:
            result.counts.add(f"rejected.{r.reason}")
        data = encode_entries(result.entries, config.format, config.rounds.keep_generations)
        files = dict([write_recorded(out.root, out.shard_file(index), data, len(result.entries))])
        if all_rejects:
            rejects_data = encode_rejects(all_rejects)
            rejects_file = out.shard_rejects_file(index)
            files.update([write_recorded(out.root, rejects_file, rejects_data, len(all_rejects))])
        marker = {
            "file": str(out.shard_file(index).relative_to(out.root)),
            "rejects_file": str(out.shard_rejects_file(index).relative_to(out.root)) if all_rejects else None,
            "files": files,  # {path: {bytes, sha256, rows, mtime_ns}}: what "intact" means
            "fingerprint": self.fingerprint,
            "counts": result.counts.to_dict(),
            "seconds": round(time.monotonic() - started, 3),
            "finished_at": round(time.time(), 3),
        }
        write_json(out.marker_file(index), marker)  # the shard counts as done from here on
        return marker

    def record_failure(self, index: int, exc: BaseException) -> None:
        """Leave a note for `instructpt status`; a later successful run of the shard supersedes it."""
        note = {"error": f"{type(exc).__name__}: {str(exc)[:500]}", "at": round(time.time(), 3)}
        write_json(self.out.root / SHARDS_DIR / f"part-{index:05d}.failed.json", note)

    def record_shard_count(self, n: int) -> None:
        """Every process that read the whole input knows how many shards there are."""
        write_json(self.out.root / SHARDS_DIR / "count.json", {"shards": n})


def read_markers(out: OutputDir, full: bool = False) -> dict[int, dict[str, Any]]:
    """Markers of the shards that are done and intact (unreadable or damaged ones left out)."""
    return check_run(out.root, full).good


def shard_count(out: OutputDir) -> int | None:
    count = read_json_or_none(out.root / SHARDS_DIR / "count.json")
    return count.get("shards") if isinstance(count, dict) else None


def finalize(out: OutputDir, manifest: dict[str, Any], bar: Progress | None, log: Callable[[str], None]
             ) -> dict[str, Any]:  # fmt: skip
    """Write summary.json; when every shard is done, also rejects.jsonl and the complete manifest."""
    markers = read_markers(out)
    n = shard_count(out)
    complete = n is not None and all(i in markers for i in range(n))
    if complete:
        fix = "rerun the same command to recompute its shard"
        chunks = [read_verified(out.root / name, record, fix)
                  for i in range(n) for name, record in marker_files(markers[i]).items()
                  if name == markers[i].get("rejects_file")]  # fmt: skip
        data = b"".join(chunks)
        name, record = write_recorded(out.root, out.root / REJECTS, data, data.count(b"\n"))
        manifest.setdefault("files", {})[name] = record
        manifest["shards"] = {str(i): markers[i] for i in range(n)}
        manifest["complete"] = True
        manifest["shard_count"] = n
        out.write_manifest(manifest)
    elif n is not None:
        log(f"{out.root}: {len(markers)} of {n} shards done; the rest belong to other workers")
    summary = _summary(markers, complete, bar)
    summary["skipped_files"] = list(manifest.get("skipped_files", []))  # inputs of unsupported type
    write_json(out.root / SUMMARY, summary)
    if summary["documents"] == 0 and summary["rejected_inputs"]:
        top = max(summary["rejected_by_reason"].items(), key=lambda kv: kv[1])
        log(f"warning: no document was usable; most rejects: {top[0]} ({top[1]}), see {out.root / REJECTS}")
    return summary


def _summary(markers: dict[int, dict[str, Any]], complete: bool, bar: Progress | None) -> dict[str, Any]:
    total = Counts()
    for marker in markers.values():
        total.update(marker["counts"])
    summary = summarize(total)
    summary["complete"] = complete
    summary["shards"] = len(markers)
    if bar is not None:
        summary["this_run"] = throughput(bar.counts, time.monotonic() - bar.started)
        summary["this_run"]["documents"] = bar.counts["documents"]
    return summary


def synthesis_status(folder: str | Path, verify: bool = False) -> dict[str, Any]:
    """Done/total shards, documents, throughput, ETA, failures and damaged shards of a (possibly
    running) run. Shards are checked cheaply (size + mtime), or fully hashed with `verify`."""
    out = OutputDir(folder)
    if out.manifest_unreadable():
        raise UsageError(f"{out.root / MANIFEST} is unreadable; rerun the synthesize command to rebuild it")
    manifest = out.read_manifest()
    if manifest is None or "settings" not in manifest or "rounds" not in manifest["settings"]:
        raise UsageError(f"{folder} is not an `instructpt synthesize` output folder (no manifest.json)")
    check = check_run(out.root, verify)
    markers = check.good
    n = shard_count(out) or check.shard_count
    failures = []
    folder_path = out.root / SHARDS_DIR
    if folder_path.is_dir():
        for path in sorted(folder_path.glob("part-*.failed.json")):
            index = int(path.name.split(".")[0].split("-")[1])
            note = read_json_or_none(path)
            if index not in markers and isinstance(note, dict):
                failures.append({"shard": index, **note})
    total = Counts()
    for marker in markers.values():
        total.update(marker["counts"])
    busy = sum(m["seconds"] for m in markers.values())
    finished = sorted(m.get("finished_at", 0) for m in markers.values())
    wall = finished[-1] - (finished[0] - markers[min(markers)]["seconds"]) if len(finished) > 1 else busy
    rate = len(markers) / wall if wall > 0 else 0.0
    remaining = (n - len(markers)) if n is not None else None
    return {
        "folder": str(out.root),
        "complete": bool(manifest.get("complete")) and not check.damaged,
        "shards_done": len(markers),
        "shards_total": n,
        "documents_done": total["documents"],
        "pairs": total["pairs"],
        "shards_per_hour": round(rate * 3600, 2),
        "documents_per_s": round(total["documents"] / wall, 3) if wall > 0 else 0.0,
        "generated_tokens_per_s": round(total["generated_tokens"] / wall, 1) if wall > 0 else 0.0,
        "eta_seconds": round(remaining / rate) if remaining is not None and rate > 0 else None,
        "failures": failures,
        "damaged": [{"shard": i, "problem": p} for i, p in sorted(check.damaged.items())],
    }


def summarize(total: Counts) -> dict[str, Any]:
    """The figures users read first, from the summed counters."""
    c = total.values
    entries = total["entries"]
    by_prefix = lambda prefix: {k[len(prefix) :]: v for k, v in sorted(c.items()) if k.startswith(prefix)}  # noqa: E731
    return {
        "documents": total["documents"],
        "entries": entries,
        "pairs": total["pairs"],
        "pairs_per_entry": round(_ratio(total["pairs"], entries), 4),
        "entries_without_pairs": total["entries_without_pairs"],
        "entries_inheriting": total["entries_inheriting"],
        "prompts_with_context": total["prompts_with_context"],
        "context_over_budget": total["context_over_budget"],
        "long_docs": {
            "split": total["long_docs_split"],
            "parts": total["long_doc_parts"],
            "truncated": total["long_docs_truncated"],
            "skipped": total["long_docs_skipped"],
        },
        "rejected_inputs": total["rejected_inputs"],
        "rejected_by_reason": by_prefix("rejected."),
        "parse_dropped": by_prefix("parse_dropped."),
        "generations_hit_max_new_tokens": total["generations_hit_max_new_tokens"],
        "tokens": {
            "raw": total["raw_tokens"],
            "prompt": total["prompt_tokens"],
            "generated": total["generated_tokens"],
        },
        "counts": total.to_dict(),
    }


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
    """Run SPEC §3 on `documents` and yield one `Entry` per document (or part), in order.

    Documents are grouped into batches of `batch_size`; the M rounds chain documents
    within a batch. Documents too long for the context are split, truncated or
    skipped (`long_docs`); skipped ones yield nothing.
    """
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
