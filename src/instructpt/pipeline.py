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
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .corpus import CorpusReader, estimate_records, expand_inputs, file_size
from .engines.base import Engine
from .errors import UsageError
from .output import (
    FORMATS,
    REJECTS,
    SHARDS_DIR,
    SUMMARY,
    OutputDir,
    encode_entries,
    encode_rejects,
    write_atomic,
    write_json,
)
from .records import Counts, Document, Entry, Reject, content_id
from .rounds import RoundSettings, synthesize_batch, synthesize_batch_async


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
    with out.locked(_lock_name(num_workers, worker_index)):
        if _finished(out, manifest):
            log(f"{out.root}: run already complete, nothing to do")
            return json.loads((out.root / SUMMARY).read_text())
        runner = ShardRunner(config, out)
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
    files = expand_inputs(config.inputs)
    out = OutputDir(config.output, config.format)
    with out.locked(lock):
        manifest = out.open_run(config.fingerprint_settings(files), config.overwrite)
    return files, out, manifest


def _finished(out: OutputDir, manifest: dict[str, Any]) -> bool:
    intact = all(out.shard_file(int(k)).is_file() for k in manifest.get("shards", {}))
    return bool(manifest.get("complete")) and intact and (out.root / SUMMARY).is_file()


class ShardRunner:
    """Computes one shard and writes it: data, rejects, then its completion marker.

    Any process may run any shard (a local loop, a static worker, a Ray actor): the shard's
    bytes depend only on its documents and the settings, and the marker, written last, is the
    only thing that says it is done.
    """

    def __init__(self, config: SynthesisConfig, out: OutputDir) -> None:
        self.config = config
        self.out = out

    def shards(self, files: Sequence[Path]) -> Iterator[tuple[int, list[Document], list[Reject]]]:
        reader = CorpusReader(files, self.config.text_field, self.config.id_field)
        shards = iter_shards(reader, self.config.shard_size, self.config.limit)
        for index, (docs, rejects) in enumerate(shards):
            if self.config.strict and rejects:
                r = rejects[0]
                raise UsageError(f"{r.source}: {r.reason} ({r.detail}); without --strict it is skipped")
            yield index, docs, rejects

    def done(self, index: int) -> bool:
        return self.out.marker_file(index).is_file() and self.out.shard_file(index).is_file()

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
        result.counts.add("rejected_inputs", len(rejects))
        for r in rejects:
            result.counts.add(f"rejected.{r.reason}")
        data = encode_entries(result.entries, config.format, config.rounds.keep_generations)
        write_atomic(out.shard_file(index), data)
        if all_rejects:
            write_atomic(out.shard_rejects_file(index), encode_rejects(all_rejects))
        marker = {
            "file": str(out.shard_file(index).relative_to(out.root)),
            "rejects_file": str(out.shard_rejects_file(index).relative_to(out.root)) if all_rejects else None,
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


def read_markers(out: OutputDir) -> dict[int, dict[str, Any]]:
    folder = out.root / SHARDS_DIR
    markers = {}
    if folder.is_dir():
        for path in folder.glob("part-*.json"):
            if not path.name.endswith(".failed.json"):
                markers[int(path.stem.split("-")[1])] = json.loads(path.read_text())
    return markers


def shard_count(out: OutputDir) -> int | None:
    path = out.root / SHARDS_DIR / "count.json"
    return json.loads(path.read_text())["shards"] if path.is_file() else None


def finalize(out: OutputDir, manifest: dict[str, Any], bar: Progress | None, log: Callable[[str], None]
             ) -> dict[str, Any]:  # fmt: skip
    """Write summary.json; when every shard is done, also rejects.jsonl and the complete manifest."""
    markers = read_markers(out)
    n = shard_count(out)
    complete = n is not None and all(i in markers and out.shard_file(i).is_file() for i in range(n))
    if complete:
        names = [markers[i]["rejects_file"] for i in range(n) if markers[i]["rejects_file"]]
        chunks = [(out.root / name).read_bytes() for name in names]
        write_atomic(out.root / REJECTS, b"".join(chunks))
        manifest["shards"] = {str(i): markers[i] for i in range(n)}
        manifest["complete"] = True
        manifest["shard_count"] = n
        out.write_manifest(manifest)
    elif n is not None:
        log(f"{out.root}: {len(markers)} of {n} shards done; the rest belong to other workers")
    summary = _summary(markers, complete, bar)
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


def synthesis_status(folder: str | Path) -> dict[str, Any]:
    """Done/total shards, documents, throughput, ETA and failures of a (possibly running) run."""
    out = OutputDir(folder)
    manifest = out.read_manifest()
    if manifest is None or "settings" not in manifest or "rounds" not in manifest["settings"]:
        raise UsageError(f"{folder} is not an `instructpt synthesize` output folder (no manifest.json)")
    markers = read_markers(out)
    n = shard_count(out)
    failures = []
    folder_path = out.root / SHARDS_DIR
    if folder_path.is_dir():
        for path in sorted(folder_path.glob("part-*.failed.json")):
            index = int(path.name.split(".")[0].split("-")[1])
            if index not in markers:
                failures.append({"shard": index, **json.loads(path.read_text())})
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
        "complete": bool(manifest.get("complete")),
        "shards_done": len(markers),
        "shards_total": n,
        "documents_done": total["documents"],
        "pairs": total["pairs"],
        "shards_per_hour": round(rate * 3600, 2),
        "documents_per_s": round(total["documents"] / wall, 3) if wall > 0 else 0.0,
        "generated_tokens_per_s": round(total["generated_tokens"] / wall, 1) if wall > 0 else 0.0,
        "eta_seconds": round(remaining / rate) if remaining is not None and rate > 0 else None,
        "failures": failures,
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
